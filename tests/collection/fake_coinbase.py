"""A fake Coinbase Advanced Trade REST API on 127.0.0.1, close enough for the real ``ccxt.async_support.coinbase``.

    async with running_fake_coinbase(symbols=["BTC/USDT"]) as fake:
        overrides = fake.exchange_overrides()      # the value of EXCHANGE_OVERRIDES

What ccxt's ``coinbase`` class asks for, answered as Coinbase does:

- ``/v2/currencies``, ``/v2/currencies/crypto``, ``/v2/exchange-rates`` (the currencies) and
  ``/api/v3/brokerage/market/products`` (the markets: ``BTC-USDT``; none for
  ``product_type=FUTURE``);
- ``/api/v3/brokerage/market/products/{product_id}/candles`` with ``granularity``
  (``ONE_MINUTE``, ``ONE_HOUR``...), ``start`` and ``end`` in **seconds**: a fixed window, the
  candles opening from ``start`` to before ``end`` (ccxt asks for 300 candles' worth), written
  **newest first**, the still-open candle included; a window of more than 350 candles is refused
  (``INVALID_ARGUMENT``). A minute without trades has no candle, so a window inside a quiet
  stretch is answered with none. ``{"candles": [{"start", "low", "high", "open", "close",
  "volume"}]}``, every field a string.
- Errors are ``{"error": ..., "error_details": ..., "message": ...}``; too many requests is
  ``{"errors": [{"id": "rate_limit_exceeded"}]}``; a failure of Coinbase's gateway is an HTML page.

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

MAX_CANDLES = 350  # per request: a longer window is refused
GRANULARITIES = {
    "ONE_MINUTE": "1m",
    "FIVE_MINUTE": "5m",
    "FIFTEEN_MINUTE": "15m",
    "THIRTY_MINUTE": "30m",
    "ONE_HOUR": "1h",
    "TWO_HOUR": "2h",
    "SIX_HOUR": "6h",
    "ONE_DAY": "1d",
}
PRODUCTS_PATH = "/api/v3/brokerage/market/products"
GATEWAY_ERROR = "<html><head><title>503 Service Temporarily Unavailable</title></head><body></body></html>"


@dataclass
class FakeCoinbase(FakeExchange):
    """The server's state and knobs (see :class:`FakeExchange`)."""

    exchange_id = "coinbase"

    def exchange_overrides(self) -> dict[str, Any]:
        return {"coinbase": {"urls": {"api": {"rest": self.url}}}}

    def rate_limit_body(self) -> dict[str, Any]:
        return {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}

    def server_error_body(self) -> str:
        return GATEWAY_ERROR

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/currencies", self._fiat),
            web.get("/v2/currencies/crypto", self._crypto),
            web.get("/v2/exchange-rates", self._rates),
            web.get(PRODUCTS_PATH, self._products),
            web.get(PRODUCTS_PATH + "/{product_id}/candles", self._candles),
        ]

    # --- HTTP ----------------------------------------------------------------------------------

    def _codes(self) -> list[str]:
        return sorted({code for symbol in self.symbols for code in symbol.split("/")})

    async def _fiat(self, _: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "USD", "name": "US Dollar", "min_size": "0.01"}]})

    async def _crypto(self, _: web.Request) -> web.Response:
        data = [{"asset_id": f"id-{c}", "code": c, "name": c, "exponent": 8, "type": "crypto"} for c in self._codes()]
        return web.json_response({"data": data})

    async def _rates(self, _: web.Request) -> web.Response:
        return web.json_response({"data": {"currency": "USD", "rates": dict.fromkeys(self._codes(), "1")}})

    def _product(self, symbol: str) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "product_id": f"{base}-{quote}",
            "price": "100",
            "base_increment": "0.00000001",
            "quote_increment": "0.01",
            "quote_min_size": "1",
            "quote_max_size": "150000000",
            "base_min_size": "0.00000001",
            "base_max_size": "3400",
            "base_name": base,
            "quote_name": quote,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": quote,
            "base_currency_id": base,
            "base_display_symbol": base,
            "quote_display_symbol": quote,
            "view_only": False,
            "price_increment": "0.01",
            "alias": "",
            "alias_to": [],
        }

    async def _products(self, request: web.Request) -> web.Response:
        if request.query.get("product_type", "SPOT") != "SPOT":
            return web.json_response({"products": [], "num_products": 0})
        self.market_requests += 1
        products = [self._product(symbol) for symbol in sorted(self.symbols)]
        body = {"products": products, "num_products": len(products)}
        return await self.answer("markets", None, [], lambda _: json.dumps(body))

    async def _candles(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            start = int(query["start"]) * 1000
            end = int(query["end"]) * 1000
            received = CandleRequest(
                symbol=request.match_info["product_id"],
                interval=query["granularity"],
                start_ms=start,
                end_ms=end - 1,
                limit=int(query["limit"]) if "limit" in query else None,
                endpoint=request.path,
            )
        except (KeyError, ValueError):
            return _error("INVALID_ARGUMENT", "start and end argument is invalid")
        self.requests.append(received)
        known = {s.replace("/", "-"): s for s in self.symbols}
        if received.symbol not in known or known[received.symbol] in self.delisted:
            return _error("NOT_FOUND", "ProductID is invalid", status=404)
        interval = GRANULARITIES.get(received.interval)
        if interval is None or interval in self.unsupported_intervals:
            return _error("INVALID_ARGUMENT", "Unsupported granularity")
        if (end - start) // INTERVAL_MS[interval] > MAX_CANDLES:
            message = (
                f"start and end argument is invalid - number of candles requested should be less than {MAX_CANDLES}"
            )
            return _error("INVALID_ARGUMENT", message)
        open_times = self.open_times(interval, start, end - 1, MAX_CANDLES, newest=True)

        def render(rows: list[Row]) -> str:  # newest first, as Coinbase answers
            names = ("open", "high", "low", "close", "volume")
            candles = [
                {"start": str(row[0] // 1000), **dict(zip(names, map(number, row[1:6]), strict=True))}
                for row in reversed(rows)
            ]
            return json.dumps({"candles": candles})

        return await self.answer("candles", received.start_ms, open_times, render)


def _error(code: str, message: str, *, status: int = 400) -> web.Response:
    return web.json_response({"error": code, "error_details": message, "message": message}, status=status)


@asynccontextmanager
async def running_fake_coinbase(symbols: Iterable[str] = ("BTC/USDT",), **knobs: Any) -> AsyncIterator[FakeCoinbase]:
    """Serve a :class:`FakeCoinbase` on a free 127.0.0.1 port for the duration of the block."""
    async with serving(FakeCoinbase(symbols=set(symbols), **knobs)) as fake:
        yield fake
