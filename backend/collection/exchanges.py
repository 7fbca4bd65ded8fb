"""One shared ccxt client per exchange per process, with its markets, its pause and its retries.

Every run on an exchange goes through the same :class:`ExchangeClient`, so ccxt's rate limiter,
the loaded markets and a pause ordered by the exchange (429/418 with ``Retry-After``) are shared.
:func:`open_exchange_clients` opens them for a process (the app's lifespan, an arq worker's
startup) and closes every client when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OPTIONS: dict[str, Any] = {"enableRateLimit": True}
MARKETS_MAX_AGE_SECONDS = 3600.0  # markets are reloaded when older than this
DEFAULT_PAGE_LIMIT = 100  # candles per request when ccxt does not state the exchange's limit
RATE_LIMIT_FALLBACK_SECONDS = 1.0  # a 429 without Retry-After: pause this long, doubling on repeat
BAN_FALLBACK_SECONDS = 60.0  # a 418 without Retry-After: pause this long
MAX_PAUSE_SECONDS = 3600.0
# retried within a run: the network and the exchange's own throttling (RateLimitExceeded and
# DDoSProtection are siblings under NetworkError in ccxt)
RETRYABLE = (ccxt.NetworkError,)
SECRET_OPTIONS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token")
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it; nested objects merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ExchangePause:
    """A pause every request to one exchange waits out, set when the exchange says "slow down".

    Repeated 418 bans (and 429s without Retry-After) without a success in between double the pause.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._strikes = 0

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self._until - self._clock())

    def order(self, status: int, retry_after: float | None) -> float:
        """Record a 429/418 answer; returns the pause it sets."""
        self._strikes += 1
        escalation = 2.0 ** (self._strikes - 1)
        if status == 418:
            seconds = (retry_after if retry_after is not None else BAN_FALLBACK_SECONDS) * escalation
        else:
            seconds = retry_after if retry_after is not None else RATE_LIMIT_FALLBACK_SECONDS * escalation
        seconds = min(seconds, MAX_PAUSE_SECONDS)
        self._until = max(self._until, self._clock() + seconds)
        return seconds

    def clear_strikes(self) -> None:
        self._strikes = 0

    async def wait(self) -> None:
        # a sleep, not an Event: another 429 may extend the pause while we wait
        while (remaining := self.remaining_seconds) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)


class ExchangeClient:
    """A ccxt client of one exchange shared by every run in this process."""

    def __init__(self, exchange_id: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        exchange_class = getattr(ccxt_async, exchange_id)
        self.id = exchange_id
        self.ccxt: Any = exchange_class(dict(options))
        self.pause = ExchangePause(clock)
        self._clock = clock
        self._markets_loaded_at: float | None = None
        self._markets_lock = asyncio.Lock()
        self._secrets = [str(options[name]) for name in SECRET_OPTIONS if options.get(name)]
        self.ccxt.on_rest_response = self._on_rest_response

    def _on_rest_response(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        response_headers: Mapping[str, str],
        response_body: str,
        request_headers: Any,
        request_body: Any,
    ) -> str:
        """ccxt's hook on every HTTP answer: a 429 or 418 pauses every run on this exchange."""
        if code in (418, 429):
            retry_after = _retry_after_seconds(response_headers)
            seconds = self.pause.order(code, retry_after)
            logger.warning("%s answered %s: pausing requests for %.1f s", self.id, code, seconds)
        elif 200 <= code < 300:
            self.pause.clear_strikes()
        return response_body.strip()

    async def ensure_markets(self) -> None:
        """Load the markets once, and again when they are older than ``MARKETS_MAX_AGE_SECONDS``."""
        async with self._markets_lock:
            loaded_at = self._markets_loaded_at
            if loaded_at is not None and self._clock() - loaded_at < MARKETS_MAX_AGE_SECONDS:
                return
            await self.pause.wait()
            await self.ccxt.load_markets(reload=loaded_at is not None)
            self._markets_loaded_at = self._clock()

    def check_can_fetch(self, symbol: str, timeframe: str) -> None:
        """Raise a clear, non-retryable ccxt error when this exchange cannot serve these candles."""
        if not self.ccxt.has.get("fetchOHLCV"):
            raise ccxt.NotSupported(f"{self.id} does not offer OHLCV candles")
        if timeframe not in (self.ccxt.timeframes or {}):
            raise ccxt.NotSupported(f"{self.id} does not offer the {timeframe} timeframe")
        self.ccxt.market(symbol)  # BadSymbol when the exchange does not list it

    def page_limit(self, symbol: str) -> int:
        """Candles per request, from ccxt's ``features`` for this market's type, else a safe default."""
        market = self.ccxt.market(symbol)
        section = (self.ccxt.features or {}).get(market.get("type")) or {}
        if market.get("type") in ("swap", "future"):
            section = section.get("linear" if market.get("linear") else "inverse") or {}
        limit = (section.get("fetchOHLCV") or {}).get("limit")
        return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_PAGE_LIMIT

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list[Any]]:
        await self.pause.wait()
        candles: list[list[Any]] = await self.ccxt.fetch_ohlcv(symbol, timeframe, since_ms, limit)
        return candles

    def safe_message(self, exc: BaseException) -> str:
        """The error's message without credentials, one line, bounded."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            message = message.replace(secret, "***")
        message = URL_CREDENTIALS.sub("***@", message)
        return message[:500]

    async def close(self) -> None:
        await self.ccxt.close()


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class RetryPolicy:
    """Bounded retries with exponential backoff and jitter for ccxt's network-family errors."""

    def __init__(self, *, max_retries: int, base_seconds: float) -> None:
        self.max_retries = max_retries
        self.base_seconds = base_seconds

    def backoff_seconds(self, attempt: int) -> float:
        return self.base_seconds * 2.0**attempt * random.uniform(0.5, 1.5)

    async def call(self, operation: Callable[[], Awaitable[T]], *, on_retry: Callable[[BaseException], None]) -> T:
        """Run ``operation``; retry it on ``RETRYABLE`` errors up to ``max_retries`` times."""
        attempt = 0
        while True:
            try:
                return await operation()
            except RETRYABLE as exc:
                if attempt >= self.max_retries:
                    raise
                on_retry(exc)
                # throttling already set the exchange's pause, which the next call waits out
                if not isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
                    await asyncio.sleep(self.backoff_seconds(attempt))
                attempt += 1


class ExchangeClients:
    """The process's exchange clients, created on first use with the service's options."""

    def __init__(
        self, overrides: Mapping[str, Mapping[str, Any]], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._overrides = overrides
        self._clock = clock
        self._clients: dict[str, ExchangeClient] = {}

    def get(self, exchange_id: str) -> ExchangeClient:
        client = self._clients.get(exchange_id)
        if client is None:
            if exchange_id not in ccxt.exchanges:
                raise ccxt.NotSupported(f"{exchange_id!r} is not an exchange ccxt knows")
            options = deep_merge(DEFAULT_OPTIONS, self._overrides.get(exchange_id, {}))
            client = self._clients[exchange_id] = ExchangeClient(exchange_id, options, clock=self._clock)
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                await client.close()
            except Exception:
                logger.exception("closing the %s client failed", client.id)


@asynccontextmanager
async def open_exchange_clients(overrides: Mapping[str, Mapping[str, Any]]) -> AsyncIterator[ExchangeClients]:
    """The exchange clients of a process; all closed when the block ends."""
    clients = ExchangeClients(overrides)
    try:
        yield clients
    finally:
        await clients.close()
