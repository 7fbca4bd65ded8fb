"""A fake Bybit v5 spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.bybit``.

    async with running_fake_bybit(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``bybit`` class asks for (spot markets only, as the overrides say), answered as Bybit does:

- ``/v5/market/instruments-info?category=spot``: the markets (``BTCUSDT``);
- ``/v5/market/kline`` with ``symbol``, ``start``, ``limit`` (at most 1,000, 200 when absent),
  ``interval`` (``1``, ``60``, ``D``...: Bybit's names), ``category`` and optionally ``end``:
  the first ``limit`` candles from ``start`` on (the newest ones up to ``end`` without ``start``),
  written **newest first**, the still-open candle included: ``[start ms, open, high, low, close,
  volume, turnover]``, every field a string.
- Every answer is ``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}``,
  with HTTP 200 also for errors (``10001`` bad parameter or symbol, ``10006`` too many requests).
  A failure of Bybit's gateway is an HTML page, not JSON.

Knobs and faults: :mod:`tests.collection.fake_exchange`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.collection.fake_exchange import (
    INTERVAL_MS,
    CandleRequest,
    FakeExchange,
    Row,
    number,
    serving,
)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
INTERVALS = {
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "360": "6h",
    "720": "12h",
    "D": "1d",
}
KLINE_PATH = "/v5/market/kline"
GATEWAY_ERROR = "<html><head><title>503 Service Temporarily Unavailable</title></head><body></body></html>"


@dataclass
class FakeBybit(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "bybit"

    def exchange_overrides(self) -> dict[str, Any]:
        api = dict.fromkeys(("spot", "futures", "v2", "public", "private"), self.url)
        return {"bybit": {"urls": {"api": api}, "options": {"fetchMarkets": {"types": ["spot"]}}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return self._body(10006, "Too many visits!", {})

    def server_error_body(self) -> str:
        return GATEWAY_ERROR

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v5/market/time", self._time),
            web.get("/v5/market/instruments-info", self._instruments),
            web.get(KLINE_PATH, self._kline),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    def _body(self, code: int, message: str, result: Any) -> dict[str, Any]:
        return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": self.now_ms()}

    def _error(self, code: int, message: str) -> web.Response:
        return web.json_response(self._body(code, message, {}))

    def _instrument(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "symbol": base + quote,
            "baseCoin": base,
            "quoteCoin": quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "utaOnly",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": "0.000001",
                "quotePrecision": "0.00000001",
                "minOrderQty": "0.000048",
                "maxOrderQty": "71.73956243",
                "minOrderAmt": "1",
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": "0.01"},
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        }

    async def _time(self, _: web.Request) -> web.Response:
        now = self.now_ms()
        result = {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}
        return web.json_response(self._body(0, "OK", result))

    async def _instruments(self, request: web.Request) -> web.Response:
        self.market_requests += 1
        category = request.query.get("category", "")
        instruments = [self._instrument(s) for s in sorted(self.symbols)] if category == "spot" else []
        body = self._body(0, "OK", {"category": category, "list": instruments, "nextPageCursor": ""})
        return await self.answer("markets", None, [], lambda _: json.dumps(body))

    async def _kline(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            received = CandleRequest(
                symbol=query["symbol"],
                interval=query["interval"],
                start_ms=int(query["start"]) if "start" in query else None,
                end_ms=int(query["end"]) if "end" in query else None,
                limit=int(query.get("limit", DEFAULT_LIMIT)),
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return self._error(10001, "params error")
        self.requests.append(received)
        known = {s.replace("/", ""): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return self._error(10001, "Not supported symbols")
        interval = INTERVALS.get(received.interval)
        if interval is None or interval in self.unsupported_intervals:
            return self._error(10001, "Invalid period!")
        limit = min(received.limit or DEFAULT_LIMIT, MAX_LIMIT)
        end = received.end_ms if received.end_ms is not None else self.now_ms()
        if received.start_ms is None:
            open_times = self.open_times(interval, 0, end, limit, newest=True)
        else:  # the candle holding `start` on
            start = received.start_ms // INTERVAL_MS[interval] * INTERVAL_MS[interval]
            open_times = self.open_times(interval, start, end, limit, newest=False)

        def render(rows: list[Row]) -> str:  # newest first, as Bybit answers
            candles = [[str(row[0]), *(number(v) for v in row[1:6]), number(row[5])] for row in reversed(rows)]
            result = {"symbol": received.symbol, "category": query.get("category", ""), "list": candles}
            return json.dumps(self._body(0, "OK", result))

        return await self.answer("candles", received.start_ms, open_times, render)


@asynccontextmanager
async def running_fake_bybit(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeBybit]:
    """Serve a :class:`FakeBybit` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeBybit(symbols=set(symbols), **knobs)) as fake:
        yield fake
