"""ccxt's rate limiter, waking only when the exchange's budget lets the next request go.

ccxt paces each exchange's requests with a leaky bucket (``rateLimit`` and each endpoint's cost).
While a request waits for the bucket, ccxt's loop wakes every millisecond to look again: at 50
requests a second from a full queue, about twenty wake-ups a request, each a turn of the event
loop. :class:`PacedThrottler` is the same bucket with the same refill, grant order and costs; it
sleeps until the tokens the next request needs are there, so a request waits as long and costs
one wake-up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from time import time
from typing import Any

from ccxt.async_support.base.throttler import Throttler


class PacedThrottler(Throttler):  # type: ignore[misc]  # ccxt has no type hints
    """ccxt's ``Throttler`` whose leaky bucket sleeps for the tokens missing, not 1 ms at a time."""

    config: dict[str, Any]
    queue: deque[tuple[asyncio.Future[None], float | None]]
    running: bool

    async def leaky_bucket_loop(self) -> None:
        config = self.config
        last_timestamp = time() * 1000
        while self.running:
            future, cost = self.queue[0]
            cost = config["cost"] if cost is None else cost
            if config["tokens"] >= 0:
                config["tokens"] -= cost
                if not future.done():
                    future.set_result(None)
                self.queue.popleft()
                await asyncio.sleep(0)  # the granted request goes before the loop looks again
                if not self.queue:
                    self.running = False
            else:
                missing_ms = -config["tokens"] / config["refillRate"]
                await asyncio.sleep(max(config["delay"], missing_ms / 1000))
                now = time() * 1000
                elapsed, last_timestamp = now - last_timestamp, now
                config["tokens"] = min(config["tokens"] + elapsed * config["refillRate"], config["capacity"])


def pace_requests(exchange: Any) -> None:
    """Give the ccxt ``exchange`` the paced limiter, with its own bucket (its rolling-window limiter,
    which some exchanges use, sleeps until its window frees already: it stays)."""
    bucket = exchange.tokenBucket
    if exchange.throttler is not None and bucket is not None and bucket.get("algorithm") == "leakyBucket":
        exchange.throttler = PacedThrottler(bucket, exchange.asyncio_loop)
