"""A fake OKX v5 REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.okx``.

    async with running_fake_okx(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``okx`` class asks for, answered as OKX does:

- ``/api/v5/public/instruments?instType=SPOT``: the markets (``BTC-USDT``);
- ``/api/v5/market/candles`` (recent: only the latest 1,440 candles, at most 300 per page) and
  ``/api/v5/market/history-candles`` (everything, at most 100 per page), with ``instId``, ``bar``
  (``1m``, ``1H``, ``4H``, ``6Hutc``, ``1Dutc``...: OKX's names; 6 hours and longer aligned on UTC),
  ``limit``, and ``after``/``before``: only candles older than ``after`` and newer than ``before``
  (both excluded). The newest ``limit`` of those, **newest first**, every field a string:
  ``[ts, open, high, low, close, vol, volCcy, volCcyQuote, confirm]``, where ``confirm`` is ``"0"``
  for the candle still open at ``now`` and ``"1"`` for closed ones. A limit above the endpoint's
  maximum is served at that maximum, without a word.
- Every answer is ``{"code": "0", "msg": "", "data": [...]}``; errors carry OKX's codes
  (``51001`` unknown instrument, ``51000`` bad parameter, ``50011`` too many requests).

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

RECENT_MAX_LIMIT = 300
HISTORY_MAX_LIMIT = 100
DEFAULT_LIMIT = 100
RECENT_CANDLES = 1440  # the recent endpoint keeps this many candles
BARS = {
    "1m": "1m",
    "3m": "3m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1H": "1h",
    "2H": "2h",
    "4H": "4h",
    "6Hutc": "6h",
    "12Hutc": "12h",
    "1Dutc": "1d",
}
RECENT_PATH = "/api/v5/market/candles"
HISTORY_PATH = "/api/v5/market/history-candles"


@dataclass
class FakeOkx(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "okx"

    def exchange_overrides(self) -> dict[str, Any]:
        return {"okx": {"urls": {"api": {"rest": self.url}}, "options": {"fetchMarkets": {"types": ["spot"]}}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return {"code": "50011", "msg": "Too Many Requests", "data": []}

    def server_error_body(self) -> str:
        return json.dumps({"code": "50013", "msg": "Systems are busy. Please try again later.", "data": []})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v5/public/time", self._time),
            web.get("/api/v5/public/instruments", self._instruments),
            web.get(RECENT_PATH, self._candles),
            web.get(HISTORY_PATH, self._candles),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "alias": "",
            "baseCcy": base,
            "category": "1",
            "ctMult": "",
            "ctType": "",
            "ctVal": "",
            "ctValCcy": "",
            "expTime": "",
            "instFamily": "",
            "instId": f"{base}-{quote}",
            "instType": "SPOT",
            "lever": "10",
            "listTime": "1548133413000",
            "lotSz": "0.00000001",
            "maxMktSz": "1000000",
            "minSz": "0.00001",
            "optType": "",
            "quoteCcy": quote,
            "settleCcy": "",
            "state": "live",
            "stk": "",
            "tickSz": "0.1",
            "uly": "",
        }

    async def _time(self, _: web.Request) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": [{"ts": str(self.now_ms())}]})

    async def _instruments(self, request: web.Request) -> web.Response:
        self.market_requests += 1
        if request.query.get("instType") != "SPOT":
            return _ok([])
        data = [self._instrument(symbol) for symbol in sorted(self.symbols)]
        return await self.answer("markets", None, [], lambda _: json.dumps(_body(data)))

    async def _candles(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            before = int(query["before"]) if "before" in query else None
            after = int(query["after"]) if "after" in query else None
            limit = int(query.get("limit", DEFAULT_LIMIT))
            received = CandleRequest(
                symbol=query["instId"],
                interval=query["bar"],
                start_ms=before + 1 if before is not None else None,
                end_ms=after - 1 if after is not None else None,
                limit=limit,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error(51000, "Parameter error")
        self.requests.append(received)
        known = {s.replace("/", "-"): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error(51001, "Instrument ID does not exist")
        interval = BARS.get(received.interval)
        if interval is None or interval in self.unsupported_intervals:
            return _error(51000, "Parameter bar error")
        if limit < 1:
            return _error(51000, "Parameter limit error")
        open_times = self._select(request.path, interval, received, limit)
        now = self.now_ms()

        def render(rows: list[Row]) -> str:  # newest first, as OKX answers
            return json.dumps(_body([_candle(row, interval, now) for row in reversed(rows)]))

        return await self.answer("candles", received.start_ms, open_times, render)

    def _select(self, path: str, interval: str, received: CandleRequest, limit: int) -> list[int]:
        step = INTERVAL_MS[interval]
        lowest = received.start_ms if received.start_ms is not None else 0
        highest = received.end_ms if received.end_ms is not None else self.now_ms()
        if path == RECENT_PATH:
            limit = min(limit, RECENT_MAX_LIMIT)
            lowest = max(lowest, self.now_ms() // step * step - (RECENT_CANDLES - 1) * step)
        else:
            limit = min(limit, HISTORY_MAX_LIMIT)
        return self.open_times(interval, lowest, highest, limit, newest=True)


def _body(data: list[Any]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


def _ok(data: list[Any]) -> web.Response:
    return web.json_response(_body(data))


def _error(code: int, message: str) -> web.Response:
    return web.json_response({"code": str(code), "msg": message, "data": []}, status=400)


def _candle(row: Row, interval: str, now_ms: int) -> list[Any]:
    open_ms = row[0]
    closed = open_ms + INTERVAL_MS[interval] <= now_ms
    values = [number(v) for v in row[1:6]]
    volume = values[4]
    return [str(open_ms), *values, volume, volume, "1" if closed else "0"]


@asynccontextmanager
async def running_fake_okx(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeOkx]:
    """Serve a :class:`FakeOkx` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeOkx(symbols=set(symbols), **knobs)) as fake:
        yield fake
