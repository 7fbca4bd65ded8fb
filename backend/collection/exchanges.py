"""One shared ccxt client per exchange per process, with its markets, its pause and its retries.

Every run on an exchange goes through the same :class:`ExchangeClient`, so ccxt's rate limiter,
the loaded markets and a pause ordered by the exchange (429/418 with ``Retry-After``, or a rate
limit signalled in the body) are shared. Answers are checked before ccxt reads them: a 2xx body
that is not JSON, or not shaped as the exchange's dialect answers, is a ``BadResponse`` (retried),
never an empty result. :func:`open_exchange_clients` opens the clients for a process (the app's
lifespan, an arq worker's startup) and closes every client when it ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from backend.collection.causes import plain_cause
from backend.collection.dialects import Dialect
from backend.collection.exchange_states import ExchangeActivity, PauseSnapshot
from backend.collection.pacing import pace_requests
from backend.collection.profiles import ExchangeProfile, profile_for
from backend.db.pool import Pool
from backend.process import process_identity

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OPTIONS: dict[str, Any] = {"enableRateLimit": True}
MARKETS_MAX_AGE_SECONDS = 3600.0  # markets are reloaded when older than this
MARKETS_RECHECK_SECONDS = 300.0  # an unknown symbol reloads markets older than this once
EXCHANGE_CLOCK_MAX_AGE_SECONDS = 60.0  # the exchange's clock is measured again when older than this
DEFAULT_PAGE_LIMIT = 100  # candles per request when ccxt does not state the exchange's limit
RATE_LIMIT_FALLBACK_SECONDS = 1.0  # a rate limit without Retry-After pauses the exchange this long
BAN_FALLBACK_SECONDS = 60.0  # a 418 ban without Retry-After: pause this long (doubling on repeat)
BAN_STRIKES_MEMORY_SECONDS = 600.0  # bans further apart than this do not escalate
MAX_PAUSE_SECONDS = 600.0  # unless the exchange's own Retry-After asks for more
# retried within a run: the network, the exchange's own throttling (RateLimitExceeded and
# DDoSProtection are siblings under NetworkError in ccxt) and answers that cannot be trusted
RETRYABLE = (ccxt.NetworkError, ccxt.BadResponse)
THROTTLED = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
SNIPPET_CHARS = 80  # of a bad body, quoted in the error
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

    A rate limit (429, or a body ccxt maps to ``RateLimitExceeded``/``DDoSProtection``) pauses for
    its ``Retry-After``, else for a second: the retries' own backoff grows per request. Only bans
    (418) escalate: each ban within ``BAN_STRIKES_MEMORY_SECONDS`` of the previous one's end
    doubles its pause, and a 2xx answer forgives them. No pause is longer than
    ``MAX_PAUSE_SECONDS`` unless the exchange's ``Retry-After`` asks for more.

    ``on_change`` is called (on the event loop) whenever a pause starts or is extended.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, on_change: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        self._on_change = on_change
        self._until = 0.0
        self._ban_until = 0.0
        self._held_since = 0.0
        self._reason = ""
        self._ban_strikes = 0
        self._last_ban_until = 0.0
        self._last_order: float | None = None

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self._until - self._clock())

    def throttle(self, retry_after: float | None, reason: str = "rate limited") -> float:
        """Record a rate-limit answer; returns the pause it sets."""
        seconds = retry_after if retry_after is not None else RATE_LIMIT_FALLBACK_SECONDS
        return self._pause(seconds, retry_after, reason)

    def ban(self, retry_after: float | None) -> float:
        """Record a 418 ban; returns the pause it sets."""
        now = self._clock()
        if now - self._last_ban_until > BAN_STRIKES_MEMORY_SECONDS:
            self._ban_strikes = 0
        self._ban_strikes += 1
        base = retry_after if retry_after is not None else BAN_FALLBACK_SECONDS
        reason = "banned (418)" + (f" {self._ban_strikes} times in a row" if self._ban_strikes > 1 else "")
        seconds = self._pause(base * 2.0 ** (self._ban_strikes - 1), retry_after, reason, ban=True)
        self._last_ban_until = now + seconds
        return seconds

    def clear_strikes(self) -> None:
        self._ban_strikes = 0

    def ordered_since(self, moment: float) -> bool:
        """Whether a rate limit or a ban was recorded at or after ``moment`` (of the same clock)."""
        return self._last_order is not None and self._last_order >= moment

    def snapshot(self) -> PauseSnapshot | None:
        """The pause as it stands now; None when requests are not held."""
        now = self._clock()
        if self._until <= now:
            return None
        return PauseSnapshot(
            state="banned" if self._ban_until > now else "paused",
            held_for_seconds=now - self._held_since,
            remaining_seconds=self._until - now,
            reason=self._reason,
        )

    def _pause(self, seconds: float, retry_after: float | None, reason: str, *, ban: bool = False) -> float:
        seconds = min(seconds, max(MAX_PAUSE_SECONDS, retry_after or 0.0))
        now = self._last_order = self._clock()
        if self._until <= now:
            self._held_since = now
        until = now + seconds
        if ban:
            self._ban_until = max(self._ban_until, until)
        if until >= self._until or ban:
            self._reason = f"{reason}, Retry-After {retry_after:g} s" if retry_after is not None else reason
        self._until = max(self._until, until)
        if self._on_change is not None:
            self._on_change()
        return seconds

    async def wait(self) -> None:
        # a sleep, not an Event: another 429 may extend the pause while we wait
        while (remaining := self.remaining_seconds) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)


class ExchangeClient:
    """A ccxt client of one exchange shared by every run in this process."""

    def __init__(
        self,
        exchange_id: str,
        options: Mapping[str, Any],
        *,
        clock: Callable[[], float],
        activity: ExchangeActivity | None = None,
        settle_seconds: float | None = None,
    ) -> None:
        exchange_class = getattr(ccxt_async, exchange_id)
        self.id = exchange_id
        self.ccxt: Any = exchange_class(dict(options))
        pace_requests(self.ccxt)
        # ccxt would leave out every candle before `since` (so one sent in seconds would vanish) and cut
        # the answer to `limit`: candles are read as the exchange sent them, and judged by candle_rules
        self.ccxt.parse_ohlcvs = functools.partial(_every_candle, self.ccxt)
        self.profile: ExchangeProfile = profile_for(exchange_id)
        self.dialect: Dialect = self.profile.dialect
        # how long after its close by our clock a candle is final, when the exchange says nothing of it
        self.settle = self.dialect.settle if settle_seconds is None else timedelta(seconds=settle_seconds)
        self._exchange_clock: tuple[float, timedelta] | None = None  # (measured at, offset)
        self._exchange_clock_lock = asyncio.Lock()  # timeframes starting together measure it once
        self._activity = activity
        on_change = None if activity is None else functools.partial(self._pause_changed, activity)
        self.pause = ExchangePause(clock, on_change=on_change)
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
        """ccxt's hook on every HTTP answer, before ccxt reads it.

        A 429 or 418 pauses every run on this exchange. A 2xx body must be JSON shaped as the
        dialect answers: ccxt would read an HTML page, a cut-off body or ``{}`` as "no candles".
        """
        body = response_body.strip()
        answer = _ANSWER.get()
        if answer is not None:
            answer.code = code
        self._count(requests=1, errors=int(code >= 400), rate_limits=int(code == 429), bans=int(code == 418))
        if code == 418:
            self.pause.ban(_retry_after_seconds(response_headers))
        elif code == 429:
            self.pause.throttle(_retry_after_seconds(response_headers), "rate limited (429)")
        elif 200 <= code < 300:
            self.pause.clear_strikes()
            self._check_answer(code, method, url, body)
        return body

    def _count(self, **counts: int) -> None:
        if self._activity is not None:
            self._activity.count(self.id, **counts)

    def _pause_changed(self, activity: ExchangeActivity) -> None:
        activity.pause_changed(self.id, self.pause.snapshot)

    def _check_answer(self, code: int, method: str, url: str, body: str) -> None:
        try:
            answer = self.ccxt.on_json_response(body)  # the JSON parser ccxt reads the body with next
        except ValueError:
            problem: str | None = "a body that is not JSON"
        else:
            problem = self.dialect.answer_problem(urlsplit(url).path, answer)
        if problem is not None:
            snippet = " ".join(body[:SNIPPET_CHARS].split())
            raise ccxt.BadResponse(f"{self.id} {method} {url} answered {code} with {problem}: {snippet!r}")

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """One request once the exchange's pause is over; a rate limit, however signalled, pauses it.

        Counted: every answer in the response hook (4xx/5xx ones as errors); here, a request that
        got no answer, or whose 2xx answer was an error, as an error.
        """
        await self.pause.wait()
        started = self._clock()
        answer = _Answer()
        token = _ANSWER.set(answer)
        try:
            return await operation()
        except THROTTLED:
            signalled_in_body = not self.pause.ordered_since(started)  # no 429/418 paused yet
            self._count_failure(answer, rate_limit=signalled_in_body)
            if signalled_in_body:
                self.pause.throttle(None, f"rate limited (said in the answer body: {self.id})")
            raise
        except Exception:
            self._count_failure(answer, rate_limit=False)
            raise
        finally:
            _ANSWER.reset(token)

    def _count_failure(self, answer: _Answer, *, rate_limit: bool) -> None:
        if answer.code is None:
            self._count(requests=1, errors=1, rate_limits=int(rate_limit))
        elif answer.code < 400:
            self._count(errors=1, rate_limits=int(rate_limit))

    async def ensure_markets(self, *, max_age: float = MARKETS_MAX_AGE_SECONDS) -> None:
        """Load the markets, and again when they are older than ``max_age`` seconds.

        A failed load, or one that lists no market at all, is not kept: the next call asks again.
        """
        async with self._markets_lock:
            loaded_at = self._markets_loaded_at
            if loaded_at is not None and self._clock() - loaded_at < max_age:
                return
            self._markets_loaded_at = None
            await self._call(lambda: self.ccxt.load_markets(reload=True))
            if not self.ccxt.markets:
                raise ccxt.BadResponse(f"{self.id} answered an empty list of markets")
            self._markets_loaded_at = self._clock()

    async def check_can_fetch(self, symbol: str, timeframe: str) -> None:
        """Raise a clear, non-retryable ccxt error when this exchange cannot serve these candles.

        A symbol missing from markets loaded more than ``MARKETS_RECHECK_SECONDS`` ago reloads
        them once first (a new listing).
        """
        if not self.ccxt.has.get("fetchOHLCV"):
            raise ccxt.NotSupported(f"{self.id} does not offer OHLCV candles")
        if timeframe not in (self.ccxt.timeframes or {}):
            raise ccxt.NotSupported(f"{self.id} does not offer the {timeframe} timeframe")
        if symbol not in (self.ccxt.markets or {}):
            await self.ensure_markets(max_age=MARKETS_RECHECK_SECONDS)
        self.ccxt.market(symbol)  # BadSymbol when the exchange does not list it

    async def final_offset(self, clock: Callable[[], datetime]) -> timedelta:
        """How far from ``clock`` lies the moment up to which closed candles are final: the exchange's
        clock (measured at most every ``EXCHANGE_CLOCK_MAX_AGE_SECONDS``) for a dialect that reads
        it, less the settle delay."""
        async with self._exchange_clock_lock:
            measured = self._exchange_clock
            if measured is None or self._clock() - measured[0] >= EXCHANGE_CLOCK_MAX_AGE_SECONDS:
                offset = await self._call(lambda: self.dialect.exchange_clock_offset(self.ccxt, clock))
                measured = self._exchange_clock = (self._clock(), offset or timedelta(0))
        return measured[1] - self.settle

    def page_limit(self, symbol: str) -> int:
        """Candles per request: the profile's, else ccxt's ``features`` for this market's type, else a
        safe default."""
        if self.profile.page is not None:
            return self.profile.page
        market = self.ccxt.market(symbol)
        section = (self.ccxt.features or {}).get(market.get("type")) or {}
        if market.get("type") in ("swap", "future"):
            section = section.get("linear" if market.get("linear") else "inverse") or {}
        limit = (section.get("fetchOHLCV") or {}).get("limit")
        return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_PAGE_LIMIT

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since_ms: int, limit: int, params: Mapping[str, Any] | None = None
    ) -> list[list[Any]]:
        candles: list[list[Any]] = await self._call(
            lambda: self.dialect.fetch_ohlcv(self.ccxt, symbol, timeframe, since_ms, limit, dict(params or {}))
        )
        return candles

    def safe_message(self, exc: BaseException) -> str:
        """The error's message and its root cause, without credentials, one line, bounded."""
        return self._redact(_with_causes(exc))[:500]

    def plain_cause(self, exc: BaseException) -> str:
        """Why ``exc`` happened in a few words (``cannot reach api.binance.com: name not resolved``)."""
        return self._redact(plain_cause(exc, exchange=self.id))

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return URL_CREDENTIALS.sub("***@", text)

    async def close(self) -> None:
        await self.ccxt.close()


def _every_candle(
    exchange: Any,
    ohlcvs: Any,
    market: Any = None,
    timeframe: str = "1m",
    since: int | None = None,
    limit: int | None = None,
    tail: bool = False,
) -> list[list[Any]]:
    """ccxt's ``parse_ohlcvs`` without its filter on ``since`` and ``limit``: every candle of the
    answer, sorted by open time."""
    candles: list[list[Any]] = type(exchange).parse_ohlcvs(exchange, ohlcvs, market, timeframe, None, None, False)
    return candles


@dataclass(slots=True)
class _Answer:
    """The HTTP status of the latest answer to one call of :meth:`ExchangeClient._call` (None: none yet)."""

    code: int | None = None


# the answer of the call in progress in this task (ccxt's response hook runs inside the call)
_ANSWER: ContextVar[_Answer | None] = ContextVar("exchange_answer", default=None)


def _with_causes(exc: BaseException) -> str:
    """``exc``'s message followed by those of its causes (ccxt keeps aiohttp's DNS error there)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    seen = {id(exc)}
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = " ".join(str(cause).split())
        if text and text not in message:
            message = f"{message}: {type(cause).__name__}: {text}"
        cause = cause.__cause__ or cause.__context__
    return message


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, for ``RETRYABLE`` errors."""

    def __init__(self, *, max_retries: int, base_seconds: float) -> None:
        self.max_retries = max_retries
        self.base_seconds = base_seconds

    def backoff_seconds(self, attempt: int) -> float:
        return self.base_seconds * 2.0**attempt * random.uniform(0.5, 1.5)

    async def call(
        self, operation: Callable[[], Awaitable[T]], *, on_retry: Callable[[BaseException, int, float], None]
    ) -> T:
        """Run ``operation``; retry it up to ``max_retries`` times, backing off between attempts.

        ``on_retry(error, retry number from 1, backoff seconds)`` is called before each retry. A rate limit also paused
        the exchange, which the next request waits out on top of the backoff.
        """
        attempt = 0
        while True:
            try:
                return await operation()
            except RETRYABLE as exc:
                if attempt >= self.max_retries:
                    raise
                seconds = self.backoff_seconds(attempt)
                on_retry(exc, attempt + 1, seconds)
                await asyncio.sleep(seconds)
                attempt += 1


class ExchangeClients:
    """The process's exchange clients, created on first use with the service's options.

    With an ``activity``, their pauses and request counts go to PostgreSQL through it.
    ``settle_seconds``: exchange id -> its settle delay, where it differs from its dialect's.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        activity: ExchangeActivity | None = None,
        settle_seconds: Mapping[str, float] | None = None,
    ) -> None:
        self._overrides = overrides
        self._settle_seconds = settle_seconds or {}
        self._clock = clock
        self._clients: dict[str, ExchangeClient] = {}
        self.activity = activity

    def get(self, exchange_id: str) -> ExchangeClient:
        client = self._clients.get(exchange_id)
        if client is None:
            if exchange_id not in ccxt.exchanges:
                raise ccxt.NotSupported(f"{exchange_id!r} is not an exchange ccxt knows")
            options = deep_merge(DEFAULT_OPTIONS, self._overrides.get(exchange_id, {}))
            client = self._clients[exchange_id] = ExchangeClient(
                exchange_id,
                options,
                clock=self._clock,
                activity=self.activity,
                settle_seconds=self._settle_seconds.get(exchange_id),
            )
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                await client.close()
            except Exception:
                logger.exception("closing the %s client failed", client.id)


@asynccontextmanager
async def open_exchange_clients(
    overrides: Mapping[str, Mapping[str, Any]], pool: Pool, *, settle_seconds: Mapping[str, float] | None = None
) -> AsyncIterator[ExchangeClients]:
    """The exchange clients of a process, recording their activity in ``pool``'s database; all
    closed when the block ends (the activity not written yet is written if the database takes it)."""
    activity = ExchangeActivity(pool, process=process_identity())
    clients = ExchangeClients(overrides, activity=activity, settle_seconds=settle_seconds)
    try:
        yield clients
    finally:
        await clients.close()
        await activity.close()
