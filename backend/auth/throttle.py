"""Failed-login limits that keep guessing expensive without letting anyone lock a user out.

Three counts per window (``LOGIN_FAILURE_WINDOW_SECONDS``), each checked before the password:

- one email from one address (``LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS``): that pair waits. Failing
  logins from one place never lock the account anywhere else.
- one address, any emails (``LOGIN_MAX_FAILURES_PER_ADDRESS``): that address waits for every email it
  never logged in to before.
- one email, from any addresses (``LOGIN_MAX_FAILURES_PER_EMAIL``, failures spread over many
  addresses): that email waits on every address it never logged in from before.

A successful login clears its pair's failures and remembers the pair as known for
``KNOWN_ADDRESS_DAYS``: a user keeps logging in from where they did before while strangers guess.
IPv6 clients count per /64 network (one machine often holds a whole /64).

Counts live in Redis when it is configured (so every process shares them), else in this
process's memory; while Redis is unreachable, in memory too, so logins keep working. A key
that reached its limit answers with the seconds left in its window, which the login route
sends as ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

KNOWN_ADDRESS_DAYS = 30
MEMORY_KEYS_BEFORE_PRUNING = 10_000


def client_key(address: str) -> str:
    """The address as counted: IPv4 as it is, IPv6 as its /64 network, anything else verbatim."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureCounter(Protocol):
    async def count(self, key: str) -> tuple[int, int]:
        """Failures recorded for ``key`` in its window, and seconds until the window ends."""

    async def add(self, key: str, window_seconds: int) -> None:
        """One more failure; the window starts with the first one."""

    async def remember(self, key: str, seconds: int) -> None:
        """Set ``key`` to 1 for the next ``seconds``, from now."""

    async def clear(self, key: str) -> None: ...


@dataclass(slots=True)
class MemoryFailureCounter:
    _windows: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def count(self, key: str) -> tuple[int, int]:
        failures, ends_at = self._windows.get(key, (0, 0.0))
        left = ends_at - time.monotonic()
        if left <= 0:
            self._windows.pop(key, None)
            return 0, 0
        return failures, int(left) + 1

    async def add(self, key: str, window_seconds: int) -> None:
        failures, _ = await self.count(key)
        ends_at = self._windows.get(key, (0, time.monotonic() + window_seconds))[1]
        self._windows[key] = (failures + 1, ends_at)
        self._prune()

    async def remember(self, key: str, seconds: int) -> None:
        self._windows[key] = (1, time.monotonic() + seconds)
        self._prune()

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def _prune(self) -> None:
        """Forget ended windows once there are many (guesses over many emails must not grow memory)."""
        if len(self._windows) > MEMORY_KEYS_BEFORE_PRUNING:
            now = time.monotonic()
            for key in [key for key, (_, ends_at) in self._windows.items() if ends_at <= now]:
                del self._windows[key]


@dataclass(slots=True)
class RedisFailureCounter:
    redis: Redis
    prefix: str = "login-failures:"
    fallback: MemoryFailureCounter = field(default_factory=MemoryFailureCounter)

    async def count(self, key: str) -> tuple[int, int]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self.prefix + key)
                pipe.ttl(self.prefix + key)
                value, ttl = await pipe.execute()
        except RedisError as exc:
            logger.warning("login throttle: Redis unavailable (%s), counting in memory", type(exc).__name__)
            return await self.fallback.count(key)
        return int(value or 0), max(int(ttl), 0)

    async def add(self, key: str, window_seconds: int) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(self.prefix + key)
                pipe.expire(self.prefix + key, window_seconds, nx=True)
                await pipe.execute()
        except RedisError:
            await self.fallback.add(key, window_seconds)

    async def remember(self, key: str, seconds: int) -> None:
        try:
            await self.redis.set(self.prefix + key, 1, ex=seconds)
        except RedisError:
            await self.fallback.remember(key, seconds)

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except RedisError:
            await self.fallback.clear(key)


@dataclass(slots=True)
class LoginThrottle:
    counter: FailureCounter
    max_failures_per_email_and_address: int
    max_failures_per_address: int
    max_failures_per_email: int
    window_seconds: int

    async def retry_after(self, *, email: str, address: str) -> int | None:
        """Seconds to wait before this email may try from this address, or ``None`` to go ahead."""
        client = client_key(address)
        limits = [(_pair(email, client), self.max_failures_per_email_and_address)]
        known, _ = await self.counter.count(_known(email, client))
        if not known:
            limits += [
                (f"address:{client}", self.max_failures_per_address),
                (f"email:{email}", self.max_failures_per_email),
            ]
        waits = []
        for key, max_failures in limits:
            failures, left = await self.counter.count(key)
            if failures >= max_failures:
                waits.append(max(left, 1))
        return max(waits) if waits else None

    async def record_failure(self, *, email: str, address: str) -> None:
        client = client_key(address)
        for key in (_pair(email, client), f"address:{client}", f"email:{email}"):
            await self.counter.add(key, self.window_seconds)

    async def record_success(self, *, email: str, address: str) -> None:
        client = client_key(address)
        await self.counter.clear(_pair(email, client))
        await self.counter.remember(_known(email, client), KNOWN_ADDRESS_DAYS * 86_400)


def _pair(email: str, client: str) -> str:
    return f"pair:{email}|{client}"


def _known(email: str, client: str) -> str:
    return f"known:{email}|{client}"
