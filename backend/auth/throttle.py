"""Failed-login limits per email and per client address.

Counts live in Redis when it is configured (so every process shares them), else in this
process's memory; while Redis is unreachable, in memory too, so logins keep working. A key
that reached its limit answers with the seconds left in its window, which the login route
sends as ``Retry-After``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limit:
    key: str
    max_failures: int


class FailureCounter(Protocol):
    async def count(self, key: str) -> tuple[int, int]:
        """Failures recorded for ``key`` in its window, and seconds until the window ends."""

    async def add(self, key: str, window_seconds: int) -> None: ...

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

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)


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

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except RedisError:
            await self.fallback.clear(key)


@dataclass(slots=True)
class LoginThrottle:
    counter: FailureCounter
    max_failures_per_email: int
    max_failures_per_address: int
    window_seconds: int

    def _limits(self, email: str, address: str) -> list[Limit]:
        return [
            Limit(f"email:{email}", self.max_failures_per_email),
            Limit(f"address:{address}", self.max_failures_per_address),
        ]

    async def retry_after(self, *, email: str, address: str) -> int | None:
        """Seconds to wait when either limit is reached, else ``None``."""
        waits = []
        for limit in self._limits(email, address):
            failures, left = await self.counter.count(limit.key)
            if failures >= limit.max_failures:
                waits.append(max(left, 1))
        return max(waits) if waits else None

    async def record_failure(self, *, email: str, address: str) -> None:
        for limit in self._limits(email, address):
            await self.counter.add(limit.key, self.window_seconds)

    async def record_success(self, *, email: str) -> None:
        await self.counter.clear(f"email:{email}")
