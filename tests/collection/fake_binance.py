"""A fake Binance spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.binance``.

    async with running_fake_binance(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES
        fake.fail_candles(429, retry_after=1)       # the next klines request answers 429

Serves ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo`` and ``/api/v3/klines`` (``symbol``,
``interval``, ``startTime``, ``endTime``, ``limit`` up to 1000): the first ``limit`` candles from
``startTime`` on, or the newest ones without it, oldest first, the candle still open at ``now``
included, as Binance does. Errors are Binance's ``{"code": -1121, "msg": ...}`` bodies; its
"too many requests" is ``-1003``. Knobs and faults: :mod:`tests.collection.fake_exchange`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.collection.fake_exchange import (
    CLOSE_AT_ONCE,
    INTERVAL_MS,
    CandleRequest,
    FakeExchange,
    Row,
    number,
    serving,
)

BINANCE_MAX_LIMIT = 1000
BINANCE_DEFAULT_LIMIT = 500


@dataclass
class FakeBinance(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    ignore_start_time: bool = False  # answer the latest candles whatever startTime says
    time_requests: int = 0  # answers of /api/v3/time (the collector reads the exchange's clock)
    _symbols_by_id: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    exchange_id = "binance"

    def exchange_overrides(self) -> dict[str, Any]:
        return {
            "binance": {
                "urls": {"api": {"public": f"{self.url}/api/v3"}},
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
                **CLOSE_AT_ONCE,
            }
        }

    def rate_limit_body(self) -> dict[str, Any]:
        return {"code": -1003, "msg": "Too much request weight used; please use WebSocket Streams for live updates."}

    def server_error_body(self) -> str:
        return "{}"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self._ping),
            web.get("/api/v3/time", self._time),
            web.get("/api/v3/exchangeInfo", self._exchange_info),
            web.get("/api/v3/klines", self._klines),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    def _symbol_of(self, market_id: str) -> str | None:
        """The ccxt symbol of a Binance market id (``BTCUSDT``), from a map rebuilt only when
        ``symbols`` changed since (a lookup per request stays cheap at ten thousand symbols)."""
        symbol = self._symbols_by_id.get(market_id)
        if symbol is None or symbol not in self.symbols:
            self._symbols_by_id = {s.replace("/", ""): s for s in self.symbols}
            symbol = self._symbols_by_id.get(market_id)
        return symbol

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
        self.time_requests += 1
        return web.json_response({"serverTime": self.now_ms()})

    async def _exchange_info(self, _: web.Request) -> web.Response:
        self.market_requests += 1
        info = {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "exchangeFilters": [],
            "symbols": [self._market(symbol) for symbol in sorted(self.symbols)],
        }
        return await self.answer("markets", None, [], lambda _: json.dumps(info))

    async def _klines(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            received = CandleRequest(
                symbol=query["symbol"],
                interval=query["interval"],
                start_ms=int(query["startTime"]) if "startTime" in query else None,
                end_ms=int(query["endTime"]) if "endTime" in query else None,
                limit=int(query["limit"]) if "limit" in query else None,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error(400, -1102, "Mandatory parameter was not sent, was empty/null, or malformed.")
        self.requests.append(received)
        symbol = self._symbol_of(received.symbol)
        if symbol is None or symbol in self.delisted:
            return _error(400, -1121, "Invalid symbol.")
        if received.interval not in INTERVAL_MS or received.interval in self.unsupported_intervals:
            return _error(400, -1120, "Invalid interval.")
        limit = BINANCE_DEFAULT_LIMIT if received.limit is None else received.limit
        if not 1 <= limit <= BINANCE_MAX_LIMIT:
            return _error(400, -1130, "Data sent for parameter 'limit' is not valid.")
        open_times = self._select(received, limit)

        def render(rows: list[Row]) -> str:
            return json.dumps([_kline(row, received.interval) for row in rows])

        return await self.answer("candles", received.start_ms, open_times, render)

    def _select(self, received: CandleRequest, limit: int) -> list[int]:
        end = self.now_ms() if received.end_ms is None or self.ignore_start_time else received.end_ms
        if received.start_ms is None or self.ignore_start_time:
            return self.open_times(received.interval, 0, end, limit, newest=True)
        return self.open_times(received.interval, received.start_ms, end, limit, newest=False)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=status)


def _kline(row: Row, interval: str) -> list[Any]:
    open_ms = row[0]
    close_ms = open_ms + INTERVAL_MS[interval] - 1
    return [open_ms, *(number(v) for v in row[1:6]), close_ms, "0", 1, "0", "0", "0"]


@asynccontextmanager
async def running_fake_binance(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeBinance]:
    """Serve a :class:`FakeBinance` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeBinance(symbols=set(symbols), **knobs)) as fake:
        yield fake
