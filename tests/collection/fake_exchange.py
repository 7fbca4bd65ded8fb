"""What the fake exchanges share: the candles they hold, their knobs, and per-request faults.

A fake (``fake_binance``, ``fake_okx``, ``fake_kraken``, ``fake_bybit``, ``fake_kucoin``,
``fake_coinbase``, ``fake_gate``) speaks one exchange's real REST API on 127.0.0.1 for the real ccxt
client; this module holds what does not depend on the dialect:

- the market: every candle's prices derive from its open time (:func:`candle_values`), so two
  fetches of one candle agree; ``missing_ms`` are open times without trades, ``quiet`` stretches
  of time without trades (:meth:`FakeExchange.quiet_between`: no candle of any timeframe lies
  wholly inside one), ``late_ms`` candles published late (left out of the first answer that would
  hold them), ``history_start_ms`` where the exchange's history begins, ``now_ms`` its clock (the
  still-open candle is served);
- selection that costs O(page) per request, whatever the range asked for, capped at ``page_limit``
  candles per answer when it is set;
- what was asked: ``requests`` (candle requests in ccxt's terms) and ``received`` (every request's
  path and query as sent);
- faults, queued per request with :meth:`FakeExchange.inject` (or the helpers named for them):
  an error status (with ``Retry-After``), a raw body instead of the answer (``{}``, HTML, empty),
  the real answer cut short, a stall, or rows changed before they are written (:func:`null`,
  :func:`value`, :func:`high_below_low`, :func:`off_grid`, :func:`in_seconds`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web

INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
FIELDS = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
# in every fake's EXCHANGE_OVERRIDES: ccxt waits a quarter of a second on close for TLS connections to
# wind down, and a fake speaks plain HTTP
CLOSE_AT_ONCE = {"timeout_on_exit": 0}

Endpoint = Literal["candles", "markets"]
Row = list[Any]  # [open_ms, open, high, low, close, volume]; values may be changed by a fault
RowChange = Callable[[Row], None]


def candle_values(open_ms: int) -> tuple[float, float, float, float, float]:
    """The (open, high, low, close, volume) the fakes serve for the candle opening at ``open_ms``."""
    base = 100.0 + 10.0 * math.sin(open_ms / 3_600_000)
    close = base + math.cos(open_ms / 600_000)
    return (round(base, 4), round(max(base, close) + 0.5, 4), round(min(base, close) - 0.5, 4), round(close, 4), 1.0)


# --- row changes for corrupt_candles ------------------------------------------------------------


def null(name: str) -> RowChange:
    """The field is sent as JSON null."""
    return value(name, None)


def value(name: str, new: Any) -> RowChange:
    """The field is sent as ``new`` (a number, or a string such as ``"NaN"`` or ``"Infinity"``)."""

    def change(row: Row) -> None:
        row[FIELDS[name]] = new

    return change


def high_below_low(row: Row) -> None:
    """High and low swapped: high < low."""
    row[2], row[3] = row[3], row[2]


def in_seconds(row: Row) -> None:
    """The open time sent in seconds, not milliseconds."""
    row[0] //= 1000


def off_grid(ms: int) -> RowChange:
    """The open time moved off the timeframe's grid by ``ms``."""

    def change(row: Row) -> None:
        row[0] += ms

    return change


@dataclass
class CandleRequest:
    """One candle request as the fake received it, in ccxt's terms (times in ms, both included)."""

    symbol: str  # the exchange's market id (BTCUSDT, BTC-USDT)
    interval: str  # the exchange's name of the timeframe
    start_ms: int | None
    end_ms: int | None
    limit: int | None
    endpoint: str = ""  # the path asked for


@dataclass
class Fault:
    """What the next matching request(s) get instead of the normal answer."""

    endpoint: Endpoint
    times: int
    from_ms: int | None = None  # candle requests only: those starting at or after this
    status: int = 200
    body: str | None = None  # sent instead of the answer
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stall_seconds: float = 0.0  # wait this long, then answer normally
    truncate: bool = False  # the normal answer cut in half
    change: RowChange | None = None  # applied to the candles at `at_ms` (else the first one) of the answer
    at_ms: frozenset[int] | None = None

    def matches(self, endpoint: Endpoint, start_ms: int | None, open_times: list[int]) -> bool:
        if self.times <= 0 or endpoint != self.endpoint:
            return False
        if self.at_ms is not None and self.at_ms.isdisjoint(open_times):
            return False
        return self.from_ms is None or (start_ms is not None and start_ms >= self.from_ms)


F = TypeVar("F", bound="FakeExchange")


@dataclass
class FakeExchange(ABC):
    """State and knobs every fake has. ``symbols`` are ccxt symbols (``BTC/USDT``).

    The knobs are plain attributes and methods; change them at any time, also while a run is going.
    """

    symbols: set[str]
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    latency_seconds: float = 0.0
    history_start_ms: int | None = None  # limited history: nothing older is served
    missing_ms: set[int] = field(default_factory=set)  # open times without a candle (no trades)
    late_ms: set[int] = field(default_factory=set)  # open times left out of the first answer that holds them
    quiet: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ms without trades
    page_limit: int | None = None  # serve at most this many candles per answer (a page capped below the asked)
    unsupported_intervals: set[str] = field(default_factory=set)  # ccxt timeframes answered with an error
    delisted: set[str] = field(default_factory=set)  # still listed in the markets, candles answer "unknown"
    requests: list[CandleRequest] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # every request's path and query, as sent
    market_requests: int = 0
    gate: asyncio.Event | None = None  # when set to an Event, candle requests wait until it is set
    url: str = ""
    _faults: list[Fault] = field(default_factory=list)

    exchange_id = ""  # the ccxt id this fake speaks for

    # --- knobs ---------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue ``fault``; faults are used in the order they were queued."""
        self._faults.append(fault)

    def fail_candles(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        from_ms: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` candle requests (from ``from_ms`` on) answer ``status``.

        429 and 418 carry the exchange's rate-limit body, and ``Retry-After`` when given.
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if body is not None:
            text = json.dumps(body)
        else:
            text = json.dumps(self.rate_limit_body()) if status in (418, 429) else self.server_error_body()
        self.inject(Fault("candles", times, from_ms, status=status, body=text, headers=headers))

    def rate_limit_candles(self, status: int, *, times: int = 1, from_ms: int | None = None) -> None:
        """Candle requests answer ``status`` with the exchange's "too many requests" body (no Retry-After)."""
        self.inject(Fault("candles", times, from_ms, status=status, body=json.dumps(self.rate_limit_body())))

    def stall_candles(self, seconds: float, *, times: int = 1, from_ms: int | None = None) -> None:
        """The next ``times`` candle requests wait ``seconds`` before answering (client timeouts)."""
        self.inject(Fault("candles", times, from_ms, stall_seconds=seconds))

    def answer_candles(
        self,
        body: str,
        *,
        status: int = 200,
        content_type: str = "application/json",
        times: int = 1,
        from_ms: int | None = None,
    ) -> None:
        """Candle requests get ``body`` as it is (``"{}"``, an HTML page, ``""``)."""
        self.inject(Fault("candles", times, from_ms, status=status, body=body, content_type=content_type))

    def truncate_candles(self, *, times: int = 1, from_ms: int | None = None) -> None:
        """Candle requests get the first half of their real answer (a cut connection)."""
        self.inject(Fault("candles", times, from_ms, truncate=True))

    def corrupt_candles(
        self, change: RowChange, *, at_ms: Iterable[int] | None = None, times: int = 1, from_ms: int | None = None
    ) -> None:
        """In the next ``times`` answers that hold them, the candles at ``at_ms`` are changed by ``change``.

        Without ``at_ms``: the oldest candle of the next ``times`` answers.
        """
        where = frozenset(at_ms) if at_ms is not None else None
        self.inject(Fault("candles", times, from_ms, change=change, at_ms=where))

    def answer_markets(self, body: str, *, times: int = 1) -> None:
        """The next ``times`` market-list requests get ``body`` as it is."""
        self.inject(Fault("markets", times, body=body))

    def clear_failures(self) -> None:
        self._faults.clear()

    def quiet_between(self, start_ms: int, end_ms: int) -> None:
        """No trades from ``start_ms`` to ``end_ms`` (excluded): no candle lying wholly inside is served."""
        self.quiet.append((start_ms, end_ms))

    def traded(self, open_ms: int, step_ms: int) -> bool:
        """Whether the candle of ``step_ms`` opening at ``open_ms`` had trades, so that the exchange serves it."""
        if open_ms in self.missing_ms:
            return False
        return not any(start <= open_ms and open_ms + step_ms <= end for start, end in self.quiet)

    # --- what the dialects implement ----------------------------------------------------------

    @abstractmethod
    def exchange_overrides(self) -> dict[str, Any]:
        """EXCHANGE_OVERRIDES pointing ccxt's client of this exchange at this server."""

    @abstractmethod
    def rate_limit_body(self) -> dict[str, Any]:
        """The body of the exchange's "too many requests" answer."""

    @abstractmethod
    def server_error_body(self) -> str:
        """The body of the exchange's answer to a request it failed to serve (5xx), as it is sent."""

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The REST endpoints ccxt uses."""

    # --- selection: O(page) whatever the range ------------------------------------------------

    def open_times(self, interval: str, lowest_ms: int, highest_ms: int, limit: int, *, newest: bool) -> list[int]:
        """Open times of held candles from ``lowest_ms`` to ``highest_ms`` (both included), oldest first.

        At most ``limit`` of them (and ``page_limit``): the oldest ones, or the newest ones when
        ``newest``. The still-open candle at ``now`` is held, as exchanges serve it.
        """
        if self.page_limit is not None:
            limit = min(limit, self.page_limit)
        step = INTERVAL_MS[interval]
        first = -(-max(lowest_ms, self.history_start_ms or 0) // step) * step
        last = min(highest_ms, self.now_ms()) // step * step
        selected: list[int] = []
        moment, direction = (last, -step) if newest else (first, step)
        while first <= moment <= last and len(selected) < limit:
            if moment in self.late_ms:
                self.late_ms.discard(moment)  # published late: served from the next answer on
            elif self.traded(moment, step):
                selected.append(moment)
            moment += direction
        return sorted(selected)

    # --- HTTP plumbing ------------------------------------------------------------------------

    async def answer(
        self,
        endpoint: Endpoint,
        start_ms: int | None,
        open_times: list[int],
        render: Callable[[list[Row]], str],
    ) -> web.Response:
        """The answer ``render`` writes for the candles at ``open_times``, or what the first matching fault says."""
        if endpoint == "candles" and self.gate is not None:
            await self.gate.wait()
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        rows: list[Row] = [[t, *candle_values(t)] for t in open_times]
        fault = next((f for f in self._faults if f.matches(endpoint, start_ms, open_times)), None)
        if fault is None:
            return web.Response(text=render(rows), content_type="application/json")
        fault.times -= 1
        if fault.stall_seconds:
            await asyncio.sleep(fault.stall_seconds)
        if fault.body is not None:
            return web.Response(
                text=fault.body, status=fault.status, content_type=fault.content_type, headers=fault.headers
            )
        if fault.change is not None:
            targets = fault.at_ms if fault.at_ms is not None else set(open_times[:1])
            for row in rows:
                if row[0] in targets:
                    fault.change(row)
        text = render(rows)
        if fault.truncate:
            text = text[: len(text) // 2]
        return web.Response(text=text, status=fault.status, content_type="application/json", headers=fault.headers)


@asynccontextmanager
async def serving(fake: F) -> AsyncIterator[F]:
    """Serve ``fake`` on a free 127.0.0.1 port for the duration of the block."""

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        fake.received.append(request.path_qs)
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.add_routes(fake.routes())
    # a stalled answer is only ever waited for by a client that has gone: don't wait for it to end
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def number(value: Any) -> Any:
    """A candle value as exchanges write it: a decimal string; None and strings as they are."""
    if value is None or isinstance(value, str):
        return value
    return f"{value:.8f}"
