"""A fake Kraken spot REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.kraken``.

    async with running_fake_kraken(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``kraken`` class asks for, answered as Kraken does:

- ``/0/public/Assets`` (the currencies: ``XXBT`` is ``BTC``, ``XETH`` is ``ETH``) and
  ``/0/public/AssetPairs`` (the markets: ``XBTUSDT``, ``ETHUSDT``);
- ``/0/public/OHLC`` with ``pair``, ``interval`` (in minutes) and ``since`` (in **seconds**; ccxt
  sends its ``since`` less one interval): the candles opening after ``since``, but **only among the
  latest 720** (the still-open one included), whatever ``since`` says: older history is never
  served. Oldest first, ``[time s, open, high, low, close, vwap, volume, count]``, the prices as
  strings; ``last`` is the open time of the newest closed candle (in seconds, as a string).
- Every answer is ``{"error": [...], "result": ...}``, with HTTP 200 also for errors
  (``EQuery:Unknown asset pair``, ``EGeneral:Invalid arguments``); too many requests is
  ``EAPI:Rate limit exceeded`` (ccxt: ``DDoSProtection``).

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

LATEST_CANDLES = 720  # Kraken serves only this many of the newest candles
INTERVALS = {"1": "1m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "240": "4h", "1440": "1d"}
ASSETS = {"BTC": "XXBT", "ETH": "XETH"}  # Kraken's names of currencies that have one of their own
ALTNAMES = {"BTC": "XBT"}
OHLC_PATH = "/0/public/OHLC"


def pair_id(symbol: str) -> str:
    """Kraken's id of the pair (``BTC/USDT`` is ``XBTUSDT``)."""
    base, quote = symbol.split("/")
    return ALTNAMES.get(base, base) + ALTNAMES.get(quote, quote)


@dataclass
class FakeKraken(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "kraken"

    def exchange_overrides(self) -> dict[str, Any]:
        return {"kraken": {**CLOSE_AT_ONCE, "urls": {"api": {"public": self.url, "private": self.url}}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return {"error": ["EAPI:Rate limit exceeded"]}

    def server_error_body(self) -> str:
        return json.dumps({"error": ["EService:Unavailable"]})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/0/public/Time", self._time),
            web.get("/0/public/Assets", self._assets),
            web.get("/0/public/AssetPairs", self._asset_pairs),
            web.get(OHLC_PATH, self._ohlc),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    async def _time(self, _: web.Request) -> web.Response:
        return _ok({"unixtime": self.now_ms() // 1000, "rfc1123": ""})

    async def _assets(self, _: web.Request) -> web.Response:
        codes = sorted({code for symbol in self.symbols for code in symbol.split("/")})
        assets = {
            ASSETS.get(code, code): {
                "aclass": "currency",
                "altname": ALTNAMES.get(code, code),
                "decimals": 10,
                "display_decimals": 5,
                "status": "enabled",
            }
            for code in codes
        }
        return _ok(assets)

    def _pair(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "altname": pair_id(symbol),
            "wsname": symbol,
            "aclass_base": "currency",
            "base": ASSETS.get(base, base),
            "aclass_quote": "currency",
            "quote": ASSETS.get(quote, quote),
            "lot": "unit",
            "cost_decimals": 5,
            "pair_decimals": 1,
            "lot_decimals": 8,
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": [[0, 0.4], [10000, 0.35]],
            "fees_maker": [[0, 0.25], [10000, 0.2]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": "0.00005",
            "costmin": "0.5",
            "tick_size": "0.1",
            "status": "online",
        }

    async def _asset_pairs(self, _: web.Request) -> web.Response:
        self.market_requests += 1
        pairs = {pair_id(symbol): self._pair(symbol) for symbol in sorted(self.symbols)}
        return await self.answer("markets", None, [], lambda _: json.dumps({"error": [], "result": pairs}))

    async def _ohlc(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            since = int(query["since"]) * 1000 if "since" in query else None
            interval = INTERVALS.get(query.get("interval", "1"))
            step = INTERVAL_MS[interval] if interval is not None else 60_000
            received = CandleRequest(
                symbol=query["pair"],
                interval=query.get("interval", "1"),
                start_ms=None if since is None else (since // step + 1) * step,  # the first open time after it
                end_ms=None,
                limit=None,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error("EGeneral:Invalid arguments")
        self.requests.append(received)
        known = {pair_id(s): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error("EQuery:Unknown asset pair")
        if interval is None or interval in self.unsupported_intervals:
            return _error("EGeneral:Invalid arguments")
        now = self.now_ms()
        newest = now // step * step
        lowest = newest - (LATEST_CANDLES - 1) * step
        if received.start_ms is not None:
            lowest = max(lowest, received.start_ms)
        open_times = self.open_times(interval, lowest, now, LATEST_CANDLES, newest=False)

        def render(rows: list[Row]) -> str:
            candles = [
                [row[0] // 1000, *(number(v) for v in row[1:5]), number(row[4]), number(row[5]), 1] for row in rows
            ]
            last = str((newest - step) // 1000)  # a string, as ccxt's recording of Kraken's answer has it
            return json.dumps({"error": [], "result": {received.symbol: candles, "last": last}})

        return await self.answer("candles", received.start_ms, open_times, render)


def _ok(result: Any) -> web.Response:
    return web.json_response({"error": [], "result": result})


def _error(message: str) -> web.Response:
    return web.json_response({"error": [message]})


@asynccontextmanager
async def running_fake_kraken(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeKraken]:
    """Serve a :class:`FakeKraken` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeKraken(symbols=set(symbols), **knobs)) as fake:
        yield fake
