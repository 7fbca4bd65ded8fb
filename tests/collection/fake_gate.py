"""A fake Gate v4 spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.gate``.

    async with running_fake_gate(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``gate`` class asks for (spot markets only, as the overrides say), answered as Gate does:

- ``/api/v4/spot/currencies``, ``/api/v4/spot/currency_pairs`` (the markets: ``BTC_USDT``) and
  ``/api/v4/margin/currency_pairs``; ``/api/v4/spot/time``: ``{"server_time": "<ms>"}``, a string as
  ccxt's recording of Gate's answer has it;
- ``/api/v4/spot/candlesticks`` with ``currency_pair``, ``interval`` (``1m``, ``1h``...) and either
  ``limit`` (the newest ones) or ``from`` and ``to`` in **seconds** (both included; ccxt asks for
  1,000 candles' worth, the most Gate serves at once): a fixed window, oldest first, the
  still-open candle included, ``[time s, quote volume, close, high, low, open, base volume,
  window closed]``, every field a string, the last one ``"true"`` once the candle is closed.
  A ``from`` more than 10,000 candles back is refused: HTTP 400
  ``{"label": "INVALID_PARAM_VALUE", "message": "Candlestick too long ago. Maximum 10000 points ago
  are allowed"}`` (ccxt: ``BadRequest``). A minute without trades has no candle, so a window
  inside a quiet stretch is answered with none.
- Errors are ``{"label": ..., "message": ...}`` (``INVALID_CURRENCY_PAIR``, ``INVALID_PARAM_VALUE``,
  ``TOO_MANY_REQUESTS``, ``SERVER_ERROR``).

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
    CLOSE_AT_ONCE,
    INTERVAL_MS,
    CandleRequest,
    FakeExchange,
    Row,
    number,
    serving,
)

MAX_POINTS = 1000  # candles per request
REACH_POINTS = 10_000  # a window may start at most this many candles back
INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "8h", "1d")
TOO_LONG_AGO = f"Candlestick too long ago. Maximum {REACH_POINTS} points ago are allowed"
CANDLESTICKS_PATH = "/api/v4/spot/candlesticks"


@dataclass
class FakeGate(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "gate"

    def exchange_overrides(self) -> dict[str, Any]:
        api = dict.fromkeys(("wallet", "futures", "margin", "delivery", "spot", "options"), f"{self.url}/api/v4")
        return {
            "gate": {
                **CLOSE_AT_ONCE,
                "urls": {"api": {"public": api}},
                "options": {"fetchMarkets": {"types": ["spot"]}},
            }
        }

    def rate_limit_body(self) -> dict[str, Any]:
        return {"label": "TOO_MANY_REQUESTS", "message": "Request Rate limit Exceeded"}

    def server_error_body(self) -> str:
        return json.dumps({"label": "SERVER_ERROR", "message": "Internal server error"})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v4/spot/time", self._time),
            web.get("/api/v4/spot/currencies", self._currencies),
            web.get("/api/v4/spot/currency_pairs", self._currency_pairs),
            web.get("/api/v4/margin/currency_pairs", self._margin_pairs),
            web.get(CANDLESTICKS_PATH, self._candlesticks),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    async def _time(self, _: web.Request) -> web.Response:
        return web.json_response({"server_time": str(self.now_ms())})

    async def _currencies(self, _: web.Request) -> web.Response:
        codes = sorted({code for symbol in self.symbols for code in symbol.split("/")})
        currencies = [
            {
                "currency": c,
                "name": c,
                "delisted": False,
                "withdraw_disabled": False,
                "withdraw_delayed": False,
                "deposit_disabled": False,
                "trade_disabled": False,
                "fixed_rate": "",
                "chain": c,
                "chains": [
                    {
                        "name": c,
                        "addr": "",
                        "withdraw_disabled": False,
                        "withdraw_delayed": False,
                        "deposit_disabled": False,
                    }
                ],
            }
            for c in codes
        ]
        return web.json_response(currencies)

    def _pair(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "id": f"{base}_{quote}",
            "base": base,
            "base_name": base,
            "quote": quote,
            "quote_name": quote,
            "fee": "0.2",
            "min_base_amount": "0.00001",
            "min_quote_amount": "3",
            "max_quote_amount": "5000000",
            "amount_precision": 6,
            "precision": 1,
            "trade_status": "tradable",
            "sell_start": 1516924200,
            "buy_start": 1516924200,
            "type": "normal",
        }

    async def _currency_pairs(self, _: web.Request) -> web.Response:
        self.market_requests += 1
        pairs = [self._pair(symbol) for symbol in sorted(self.symbols)]
        return await self.answer("markets", None, [], lambda _: json.dumps(pairs))

    async def _margin_pairs(self, _: web.Request) -> web.Response:
        return web.json_response([])

    async def _candlesticks(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            start = int(query["from"]) * 1000 if "from" in query else None
            end = int(query["to"]) * 1000 if "to" in query else None
            received = CandleRequest(
                symbol=query["currency_pair"],
                interval=query.get("interval", "30m"),
                start_ms=start,
                end_ms=end,
                limit=int(query["limit"]) if "limit" in query else None,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error("INVALID_PARAM_VALUE", "invalid argument")
        self.requests.append(received)
        known = {s.replace("/", "_"): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error("INVALID_CURRENCY_PAIR", f"Invalid currency pair {received.symbol}")
        interval = received.interval
        if interval not in INTERVALS or interval in self.unsupported_intervals:
            return _error("INVALID_PARAM_VALUE", "invalid argument: interval")
        step = INTERVAL_MS[interval]
        now = self.now_ms()
        highest = end if end is not None else now
        if start is None:
            open_times = self.open_times(interval, 0, highest, received.limit or 100, newest=True)
        elif received.limit is not None:
            return _error("INVALID_PARAM_VALUE", "limit conflicts with from/to")
        elif (now - start) // step > REACH_POINTS:
            return _error("INVALID_PARAM_VALUE", TOO_LONG_AGO)
        elif (highest - start) // step >= MAX_POINTS:
            return _error("INVALID_PARAM_VALUE", f"Too many points requested. Maximum {MAX_POINTS} points allowed")
        else:
            open_times = self.open_times(interval, start, highest, MAX_POINTS, newest=False)

        def render(rows: list[Row]) -> str:  # oldest first, as Gate answers
            candles = [
                [
                    str(row[0] // 1000),
                    number(row[5]),
                    number(row[4]),
                    number(row[2]),
                    number(row[3]),
                    number(row[1]),
                    number(row[5]),
                    "true" if row[0] + step <= now else "false",
                ]
                for row in rows
            ]
            return json.dumps(candles)

        return await self.answer("candles", received.start_ms, open_times, render)


def _error(label: str, message: str) -> web.Response:
    return web.json_response({"label": label, "message": message}, status=400)


@asynccontextmanager
async def running_fake_gate(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeGate]:
    """Serve a :class:`FakeGate` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeGate(symbols=set(symbols), **knobs)) as fake:
        yield fake
