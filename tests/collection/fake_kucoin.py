"""A fake KuCoin spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.kucoin``.

    async with running_fake_kucoin(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``kucoin`` class asks for (spot markets only, as the overrides say), answered as KuCoin does:

- ``/api/v3/currencies``, ``/api/v2/symbols`` (the markets: ``BTC-USDT``) and
  ``/api/v1/market/allTickers`` (the fees);
- ``/api/v1/market/candles`` with ``symbol``, ``type`` (``1min``, ``1hour``...: KuCoin's names),
  ``startAt`` and ``endAt`` in **seconds**: a fixed window, the candles opening from ``startAt``
  to before ``endAt`` (ccxt asks for ``limit`` candles' worth: 1,500 at most), at most 1,500 of
  them (the newest), written **newest first**, the still-open candle included: ``[time s, open,
  close, high, low, volume, turnover]``, every field a string. A minute without trades has no
  candle, so a window inside a quiet stretch is answered with none.
- Every answer is ``{"code": "200000", "data": ...}``; errors carry KuCoin's codes (``400100``
  bad parameter, ``429000`` too many requests, ``500000`` internal error).

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

MAX_CANDLES = 1500  # per answer
TYPES = {
    "1min": "1m",
    "3min": "3m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "1hour": "1h",
    "2hour": "2h",
    "4hour": "4h",
    "6hour": "6h",
    "8hour": "8h",
    "12hour": "12h",
    "1day": "1d",
}
CANDLES_PATH = "/api/v1/market/candles"


@dataclass
class FakeKucoin(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "kucoin"

    def exchange_overrides(self) -> dict[str, Any]:
        api = dict.fromkeys(("public", "private", "futuresPublic", "futuresPrivate"), self.url)
        return {"kucoin": {"urls": {"api": api}, "options": {"fetchMarkets": {"types": ["spot"]}}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return {"code": "429000", "msg": "Too many requests. System-level rate limit exceeded."}

    def server_error_body(self) -> str:
        return json.dumps({"code": "500000", "msg": "Internal Server Error"})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/timestamp", self._time),
            web.get("/api/v3/currencies", self._currencies),
            web.get("/api/v2/symbols", self._symbols),
            web.get("/api/v1/market/allTickers", self._tickers),
            web.get(CANDLES_PATH, self._candles),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    async def _time(self, _: web.Request) -> web.Response:
        return _ok(self.now_ms())

    async def _currencies(self, _: web.Request) -> web.Response:
        codes = sorted({code for symbol in self.symbols for code in symbol.split("/")})
        return _ok([{"currency": c, "name": c, "fullName": c, "precision": 8, "chains": []} for c in codes])

    def _symbol(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "symbol": f"{base}-{quote}",
            "name": f"{base}-{quote}",
            "baseCurrency": base,
            "quoteCurrency": quote,
            "feeCurrency": quote,
            "market": quote,
            "baseMinSize": "0.00001",
            "quoteMinSize": "0.1",
            "baseMaxSize": "10000000000",
            "quoteMaxSize": "99999999",
            "baseIncrement": "0.00000001",
            "quoteIncrement": "0.000001",
            "priceIncrement": "0.1",
            "priceLimitRate": "0.1",
            "minFunds": "0.1",
            "isMarginEnabled": True,
            "enableTrading": True,
        }

    async def _symbols(self, _: web.Request) -> web.Response:
        self.market_requests += 1
        data = [self._symbol(symbol) for symbol in sorted(self.symbols)]
        return await self.answer("markets", None, [], lambda _: json.dumps({"code": "200000", "data": data}))

    async def _tickers(self, _: web.Request) -> web.Response:
        tickers = [
            {"symbol": s.replace("/", "-"), "takerFeeRate": "0.001", "makerFeeRate": "0.001"}
            for s in sorted(self.symbols)
        ]
        return _ok({"time": self.now_ms(), "ticker": tickers})

    async def _candles(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            start = int(query.get("startAt", 0)) * 1000
            end = int(query.get("endAt", 0)) * 1000
            received = CandleRequest(
                symbol=query["symbol"],
                interval=query["type"],
                start_ms=start or None,
                end_ms=end - 1 if end else None,
                limit=None,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error(400100, "Parameter error")
        self.requests.append(received)
        known = {s.replace("/", "-"): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error(400100, "This pair is not provided at present")
        interval = TYPES.get(received.interval)
        if interval is None or interval in self.unsupported_intervals:
            return _error(400100, "Unsupported type")
        highest = received.end_ms if received.end_ms is not None else self.now_ms()
        lowest = received.start_ms if received.start_ms is not None else highest - MAX_CANDLES * INTERVAL_MS[interval]
        open_times = self.open_times(interval, lowest, highest, MAX_CANDLES, newest=True)

        def render(rows: list[Row]) -> str:  # newest first, as KuCoin answers
            candles = [
                [
                    str(row[0] // 1000),
                    number(row[1]),
                    number(row[4]),
                    number(row[2]),
                    number(row[3]),
                    number(row[5]),
                    number(row[5]),
                ]
                for row in reversed(rows)
            ]
            return json.dumps({"code": "200000", "data": candles})

        return await self.answer("candles", received.start_ms, open_times, render)


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": "200000", "data": data})


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"code": str(code), "msg": message}, status=400)


@asynccontextmanager
async def running_fake_kucoin(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeKucoin]:
    """Serve a :class:`FakeKucoin` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeKucoin(symbols=set(symbols), **knobs)) as fake:
        yield fake
