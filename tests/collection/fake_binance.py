"""A fake Binance spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.binance``.

    async with running_fake_binance(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES
        fake.fail_klines(429, retry_after=1)        # the next klines request answers 429

Serves ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` and ``/api/v3/klines`` (``symbol``,
``interval``, ``startTime``, ``endTime``, ``limit`` up to 1000; candles aligned to the interval from the
epoch; the candle still open at ``now`` included, as Binance does). Every candle's prices derive from its
open time, so two fetches of one candle agree. The knobs are plain attributes and methods; change them at
any time, also while a run is going.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

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
BINANCE_MAX_LIMIT = 1000
BINANCE_DEFAULT_LIMIT = 500


@dataclass
class KlinesRequest:
    """One klines request as the fake received it."""

    symbol: str
    interval: str
    start_ms: int | None
    end_ms: int | None
    limit: int | None


@dataclass
class _Failure:
    status: int  # 0: stall for `stall_seconds` instead of answering
    times: int
    body: dict[str, Any]
    headers: dict[str, str]
    from_ms: int | None  # only requests whose startTime is at or after this
    stall_seconds: float = 0.0

    def matches(self, request: KlinesRequest) -> bool:
        if self.times <= 0:
            return False
        return self.from_ms is None or (request.start_ms is not None and request.start_ms >= self.from_ms)


def candle_values(open_ms: int) -> tuple[float, float, float, float, float]:
    """The (open, high, low, close, volume) the fake serves for the candle opening at ``open_ms``."""
    base = 100.0 + 10.0 * math.sin(open_ms / 3_600_000)
    close = base + math.cos(open_ms / 600_000)
    return (round(base, 4), round(max(base, close) + 0.5, 4), round(min(base, close) - 0.5, 4), round(close, 4), 1.0)


@dataclass
class FakeBinance:
    """The server's state and knobs. ``symbols`` are ccxt symbols (``BTC/USDT``)."""

    symbols: set[str]
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    latency_seconds: float = 0.0
    history_start_ms: int | None = None  # limited history: nothing older is served
    missing_ms: set[int] = field(default_factory=set)  # open times without a candle (no trades)
    ignore_start_time: bool = False  # answer the latest candles whatever startTime says
    page_limit: int = BINANCE_MAX_LIMIT  # serve at most this many candles per request
    unsupported_intervals: set[str] = field(default_factory=set)  # answered with -1120 Invalid interval
    delisted: set[str] = field(default_factory=set)  # still in exchangeInfo, klines answer -1121
    gate: asyncio.Event | None = None  # when set to an Event, klines requests wait until it is set
    requests: list[KlinesRequest] = field(default_factory=list)
    url: str = ""
    _failures: list[_Failure] = field(default_factory=list)

    # --- knobs ---------------------------------------------------------------------------------

    def fail_klines(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        from_ms: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` klines requests (from ``from_ms`` on, when given) answer ``status``.

        429 and 418 carry ``Retry-After`` when ``retry_after`` is given, as Binance's do.
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        default_body = {"code": -1003, "msg": "Too many requests."} if status in (418, 429) else {}
        self._failures.append(_Failure(status, times, body or default_body, headers, from_ms))

    def stall_klines(self, seconds: float, *, times: int = 1, from_ms: int | None = None) -> None:
        """The next ``times`` klines requests wait ``seconds`` before answering (client timeouts)."""
        self._failures.append(_Failure(0, times, {}, {}, from_ms, stall_seconds=seconds))

    def clear_failures(self) -> None:
        self._failures.clear()

    def exchange_overrides(self) -> dict[str, Any]:
        """EXCHANGE_OVERRIDES pointing ccxt's binance client at this server."""
        return {
            "binance": {
                "urls": {"api": {"public": f"{self.url}/api/v3"}},
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
            }
        }

    def candles(self, interval: str, start_ms: int, end_ms: int) -> list[int]:
        """Open times of the candles the fake has from ``start_ms`` to ``end_ms`` (both included)."""
        step = INTERVAL_MS[interval]
        first = -(-max(start_ms, self.history_start_ms or 0) // step) * step
        last = min(end_ms, self.now_ms()) // step * step
        return [t for t in range(first, last + 1, step) if t not in self.missing_ms]

    # --- HTTP ----------------------------------------------------------------------------------

    def _market(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "symbol": base + quote,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }

    async def _ping(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, _: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms()})

    async def _exchange_info(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": [self._market(symbol) for symbol in sorted(self.symbols)],
            }
        )

    async def _klines(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            received = KlinesRequest(
                symbol=query["symbol"],
                interval=query["interval"],
                start_ms=int(query["startTime"]) if "startTime" in query else None,
                end_ms=int(query["endTime"]) if "endTime" in query else None,
                limit=int(query["limit"]) if "limit" in query else None,
            )
        except (KeyError, ValueError):
            return _error(400, -1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        self.requests.append(received)
        if self.gate is not None:
            await self.gate.wait()
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        failure = next((f for f in self._failures if f.matches(received)), None)
        if failure is not None:
            failure.times -= 1
            if failure.status == 0:
                await asyncio.sleep(failure.stall_seconds)
            else:
                return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        known = {s.replace("/", ""): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error(400, -1121, "Invalid symbol.")
        if received.interval not in INTERVAL_MS or received.interval in self.unsupported_intervals:
            return _error(400, -1120, "Invalid interval.")
        limit = BINANCE_DEFAULT_LIMIT if received.limit is None else received.limit
        if not 1 <= limit <= BINANCE_MAX_LIMIT:
            return _error(400, -1130, "Data sent for parameter 'limit' is not valid.")
        return web.json_response([_kline(t, received.interval) for t in self._select(received, limit)])

    def _select(self, received: KlinesRequest, limit: int) -> list[int]:
        limit = min(limit, self.page_limit)
        step = INTERVAL_MS[received.interval]
        end = received.end_ms if received.end_ms is not None and not self.ignore_start_time else self.now_ms()
        if received.start_ms is None or self.ignore_start_time:
            return self.candles(received.interval, end - (limit + len(self.missing_ms)) * step, end)[-limit:]
        return self.candles(received.interval, received.start_ms, end)[:limit]


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=status)


def _kline(open_ms: int, interval: str) -> list[Any]:
    o, h, low, c, v = candle_values(open_ms)
    close_ms = open_ms + INTERVAL_MS[interval] - 1
    return [open_ms, f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.8f}", close_ms, "0", 1, "0", "0", "0"]


@asynccontextmanager
async def running_fake_binance(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeBinance]:
    """Serve a :class:`FakeBinance` on a free 127.0.0.1 port for the duration of the block."""
    fake = FakeBinance(symbols=set(symbols), **knobs)
    app = web.Application()
    app.router.add_get("/api/v3/ping", fake._ping)
    app.router.add_get("/api/v3/time", fake._time)
    app.router.add_get("/api/v3/exchangeInfo", fake._exchange_info)
    app.router.add_get("/api/v3/klines", fake._klines)
    runner = web.AppRunner(app, access_log=None)
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
