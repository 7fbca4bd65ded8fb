"""The Redis client, when ``REDIS_URL`` is set."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import Redis


def create_redis(url: str) -> Redis:
    """Connect lazily; ``rediss://`` accepts Heroku Redis's self-signed certificate."""
    if urlsplit(url).scheme == "rediss":
        client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, ssl_cert_reqs="none")
    else:
        client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    assert isinstance(client, Redis)
    return client
