"""Login attempt limits that keep guessing expensive without letting anyone lock a user out.

An attempt is counted *before* its password is checked, in one atomic step that checks every
limit and counts in all of them or in none: any number of simultaneous guesses is held to the
limits, never checked first and counted after. Which counts apply depends on the client:

- a **trusted device** (it presents a valid device cookie for this email, :mod:`backend.auth.devices`):
  only that device's own attempts (``LOGIN_MAX_FAILURES_PER_DEVICE``). Guesses from anywhere
  else never lock it out.
- any other client:

  - one email from one address (``LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS``);
  - one address, any emails (``LOGIN_MAX_FAILURES_PER_ADDRESS``);
  - one email from any address without a device cookie (``LOGIN_MAX_FAILURES_PER_EMAIL``): past
    it, every unknown device waits for that email, while its trusted devices do not.

A successful login gives its attempt back to every count it took and clears its pair's (or its
device's) count. An attempt whose password was never checked (the server was too busy) is given
back too. Counts live for ``LOGIN_FAILURE_WINDOW_SECONDS`` from the first one; a count at its limit
answers with the seconds left, which the login route sends as ``Retry-After``. IPv6 clients count
per /64 network (one machine often holds a whole /64).

Counts live in Redis when it is configured (every process shares them), else in this process's
memory; while Redis is unreachable, in memory too, so logins keep working.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

MEMORY_KEYS_BEFORE_PRUNING = 10_000

# KEYS: the counts; ARGV[1]: the window in seconds, ARGV[2..]: each count's limit.
# Returns 0 when the attempt was counted in every key, else the seconds to wait (nothing counted).
ADMIT_SCRIPT = """
local wait = 0
for i, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
        wait = math.max(wait, redis.call('TTL', key), 1)
    end
end
if wait > 0 then
    return wait
end
for _, key in ipairs(KEYS) do
    if redis.call('INCR', key) == 1 or redis.call('TTL', key) < 0 then
        redis.call('EXPIRE', key, ARGV[1])
    end
end
return 0
"""
# KEYS: counts to give one attempt back to (never below zero, never made anew)
GIVE_BACK_SCRIPT = """
for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
        redis.call('DEL', key)
    end
end
return 0
"""


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


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """Who tries: the email, the client's address, and the device id of a valid device cookie."""

    email: str
    address: str
    device: str | None = None

    @property
    def pair_key(self) -> str:
        return f"pair:{self.email}|{client_key(self.address)}"

    @property
    def own_key(self) -> str:
        """The count a success clears: the trusted device's, else the (email, address) pair's."""
        return f"device:{self.device}" if self.device is not None else self.pair_key


class AttemptCounter(Protocol):
    async def admit(self, limits: list[tuple[str, int]], window_seconds: int) -> int | None:
        """Count one attempt in every key when all are under their limits, and return None; else
        count nothing and return the seconds until the fullest key's window ends."""

    async def give_back(self, keys: list[str]) -> None:
        """Take one attempt off each key that still counts some."""

    async def clear(self, key: str) -> None: ...


@dataclass(slots=True)
class MemoryAttemptCounter:
    """Counts in this process (atomic: nothing awaits between checking and counting)."""

    _windows: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def admit(self, limits: list[tuple[str, int]], window_seconds: int) -> int | None:
        now = time.monotonic()
        waits = []
        for key, limit in limits:
            count, ends_at = self._live(key, now)
            if count >= limit:
                waits.append(int(ends_at - now) + 1)
        if waits:
            return max(waits)
        for key, _ in limits:
            count, ends_at = self._live(key, now)
            self._windows[key] = (count + 1, ends_at if count else now + window_seconds)
        self._prune(now)
        return None

    async def give_back(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            count, ends_at = self._live(key, now)
            if count > 1:
                self._windows[key] = (count - 1, ends_at)
            else:
                self._windows.pop(key, None)

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    def _live(self, key: str, now: float) -> tuple[int, float]:
        count, ends_at = self._windows.get(key, (0, 0.0))
        return (count, ends_at) if ends_at > now else (0, 0.0)

    def _prune(self, now: float) -> None:
        """Forget ended windows once there are many (guesses over many emails must not grow memory)."""
        if len(self._windows) > MEMORY_KEYS_BEFORE_PRUNING:
            for key in [key for key, (_, ends_at) in self._windows.items() if ends_at <= now]:
                del self._windows[key]


@dataclass(slots=True)
class RedisAttemptCounter:
    """Counts in Redis, each step one script (atomic for every process); in memory while Redis is away."""

    redis: Redis
    prefix: str  # the deployment's own: deployments sharing one Redis keep their counts apart
    fallback: MemoryAttemptCounter = field(default_factory=MemoryAttemptCounter)
    _redis_away: bool = False
    _admit: AsyncScript = field(init=False)
    _give_back: AsyncScript = field(init=False)

    def __post_init__(self) -> None:
        self._admit = self.redis.register_script(ADMIT_SCRIPT)
        self._give_back = self.redis.register_script(GIVE_BACK_SCRIPT)

    async def admit(self, limits: list[tuple[str, int]], window_seconds: int) -> int | None:
        keys = [self.prefix + key for key, _ in limits]
        try:
            wait = await self._admit(keys=keys, args=[window_seconds, *(limit for _, limit in limits)])
        except RedisError as exc:
            self._away(exc)
            return await self.fallback.admit(limits, window_seconds)
        self._back()
        return int(wait) or None

    async def give_back(self, keys: list[str]) -> None:
        try:
            await self._give_back(keys=[self.prefix + key for key in keys])
        except RedisError as exc:
            self._away(exc)
            await self.fallback.give_back(keys)

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except RedisError as exc:
            self._away(exc)
            await self.fallback.clear(key)

    def _away(self, exc: RedisError) -> None:
        if not self._redis_away:
            self._redis_away = True
            logger.warning("login limits: Redis unavailable (%s), counting in this process", type(exc).__name__)

    def _back(self) -> None:
        if self._redis_away:
            self._redis_away = False
            logger.warning("login limits: Redis is back, counting there again")


@dataclass(slots=True)
class LoginThrottle:
    counter: AttemptCounter
    max_failures_per_email_and_address: int
    max_failures_per_address: int
    max_failures_per_email: int
    max_failures_per_device: int
    window_seconds: int

    def _limits(self, attempt: LoginAttempt) -> list[tuple[str, int]]:
        if attempt.device is not None:
            return [(attempt.own_key, self.max_failures_per_device)]
        return [
            (attempt.pair_key, self.max_failures_per_email_and_address),
            (f"address:{client_key(attempt.address)}", self.max_failures_per_address),
            (f"email:{attempt.email}", self.max_failures_per_email),
        ]

    async def admit(self, attempt: LoginAttempt) -> int | None:
        """Count the attempt and return None (check its password), or return the seconds to wait."""
        return await self.counter.admit(self._limits(attempt), self.window_seconds)

    async def give_back(self, attempt: LoginAttempt) -> None:
        """The attempt's password was never checked: it counts nowhere."""
        await self.counter.give_back([key for key, _ in self._limits(attempt)])

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: the attempt counts nowhere, and its pair (or device) starts afresh."""
        await self.give_back(attempt)
        await self.counter.clear(attempt.own_key)
