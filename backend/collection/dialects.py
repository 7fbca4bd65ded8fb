"""How exchanges differ in answering candle requests, beyond what ccxt smooths over.

Every ccxt exchange id works with the default :class:`Dialect`: pages as large as its profile
(:mod:`backend.collection.profiles`) says, answers read as "the candles from ``since`` on", a
candle taken as final ``settle`` (5 s) after its close by our clock. An exchange whose answers need
more care gets a dialect of its own, named by its profile:

- :class:`Windowed`: a fixed time window ``[since, since + limit candles)`` (KuCoin, Coinbase,
  Gate), so an empty answer says only that the window has no candle (no trades in it);
- ``kraken``, ``bybit``, ``kucoin``, ``coinbase``, ``gate``: the shape of their answers, so that a
  body ccxt would read as "no candles" or as an error not worth retrying is asked again;
- ``binance``: the first ``limit`` candles from ``startTime`` on (1,000 per page); its klines
  answer is a JSON list and its market list an object with ``symbols``. Spot klines are asked for
  through ccxt's own endpoint method (its rate limiter, throttling and error mapping) and read in
  one pass, not candle by candle through ccxt's generic parser. A candle is final once its close
  time is past by the exchange's clock (``/api/v3/time``), which may lag ours.
- ``okx``: windowed too; the latest 1,440 candles on one endpoint (300 per page),
  older history on another (100 per page); every answer is ``{"code", "msg", "data": [...]}``.
  Spot candles are read from the answer as it is, so that its ``confirm`` field (``"0"``: still
  open) says which candles are final.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import ccxt
from ccxt.base.types import Entry

from backend.collection.timeframes import FIXED_STEPS, floor_open, to_datetime

if TYPE_CHECKING:
    from backend.collection.exchanges import ExchangeClient


@dataclass(frozen=True)
class PageRequest:
    """What to ask ccxt for one page: ``fetch_ohlcv(symbol, timeframe, since, limit, params)``."""

    limit: int
    params: dict[str, Any] = field(default_factory=dict)
    window_end: datetime | None = None  # windowed dialects: the answer covers [since, window_end)


DEFAULT_SETTLE = timedelta(seconds=5)


class Dialect:
    """An exchange that answers with the candles from ``since`` on, as many as ccxt says a page holds."""

    name = "default"
    # how long after its close by our clock a candle is taken as final, when the exchange says nothing
    # of it (``EXCHANGE_SETTLE_SECONDS`` changes it per exchange)
    settle = DEFAULT_SETTLE

    async def exchange_clock_offset(self, exchange: Any, clock: Callable[[], datetime]) -> timedelta | None:
        """The exchange's clock less ``clock``, for a dialect whose candles are final by the exchange's
        clock; None when they are final ``settle`` after their close by ours."""
        return None

    # ccxt's implicit API method that ``fetch_ohlcv`` calls for recent spot candles, whose cost ccxt's
    # rate limiter charges; None: ccxt's default cost of one request (1)
    candle_method: str | None = None

    def candle_request_cost(self, exchange: Any) -> float:
        """What one page of recent candles costs in ccxt's rate-limit model (in units of ``rateLimit``):
        the cost ccxt's own definition of ``candle_method`` gives, as its limiter reckons it."""
        if self.candle_method is None:
            return 1.0
        endpoint = implicit_endpoint(exchange, self.candle_method)
        return float(
            exchange.calculate_rate_limiter_cost(endpoint.api, endpoint.method, endpoint.path, {}, endpoint.config)
        )

    def page_request(
        self, client: ExchangeClient, symbol: str, timeframe: str, since: datetime, now: datetime, at_most: int
    ) -> PageRequest:
        """The request for at most ``at_most`` candles from ``since`` (``now`` is the collector's clock)."""
        return PageRequest(limit=min(at_most, client.page_limit(symbol)))

    def answer_problem(self, path: str, answer: Any) -> str | None:
        """What is wrong with a 2xx JSON ``answer`` to ``path``, or None when it is shaped right."""
        return None

    async def fetch_ohlcv(
        self, exchange: Any, symbol: str, timeframe: str, since_ms: int, limit: int, params: dict[str, Any]
    ) -> Any:
        """One page of candles from the ccxt ``exchange``: ``[open ms, open, high, low, close, volume]`` rows."""
        return await exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit, params)


class Binance(Dialect):
    name = "binance"
    settle = timedelta(0)  # final by the exchange's own clock

    async def exchange_clock_offset(self, exchange: Any, clock: Callable[[], datetime]) -> timedelta | None:
        """Binance's ``serverTime`` less the middle of ``clock``'s readings around the request."""
        before = clock()
        server_ms = await exchange.fetch_time()
        after = clock()
        if not isinstance(server_ms, int):
            raise ccxt.BadResponse(f"binance answered a server time that is not a number: {server_ms!r}")
        return to_datetime(server_ms) - (before + (after - before) / 2)

    candle_method = "publicGetKlines"

    async def fetch_ohlcv(
        self, exchange: Any, symbol: str, timeframe: str, since_ms: int, limit: int, params: dict[str, Any]
    ) -> Any:
        """Spot candles as ccxt's ``fetch_ohlcv`` asks for them (``publicGetKlines``), each kline read
        at once when it is shaped as Binance sends it; other markets go through ``fetch_ohlcv``."""
        market = exchange.market(symbol)
        if not market["spot"] or params:
            return await super().fetch_ohlcv(exchange, symbol, timeframe, since_ms, limit, params)
        request = {
            "symbol": market["id"],
            "interval": exchange.timeframes[timeframe],
            "startTime": since_ms,
            "limit": min(limit, BINANCE_MAX_LIMIT),
        }
        klines = await exchange.publicGetKlines(request)
        if not isinstance(klines, list):  # checked on arrival (ExchangeClient): ccxt read it otherwise
            raise ccxt.BadResponse(f"binance klines answer read as a {type(klines).__name__}, not a list")
        return [_kline_candle(exchange, kline, market) for kline in klines]

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if path.endswith("/klines") and not isinstance(answer, list):
            return "a klines answer that is not a list"
        listed = isinstance(answer, dict) and any(isinstance(answer.get(k), list) for k in ("symbols", "optionSymbols"))
        if path.endswith("/exchangeInfo") and not listed:
            return "an exchangeInfo answer without a list of symbols"
        return None


BINANCE_MAX_LIMIT = 1000  # klines per request


def _kline_candle(exchange: Any, kline: Any, market: Any) -> Any:
    """ccxt's ``parse_ohlcv`` of one kline, done at once for ``[open ms, "open", "high", "low", "close",
    "volume", ...]`` (the values are decimal strings, read with ``float`` as ccxt reads them); any
    other shape is left to ccxt."""
    if type(kline) is list and len(kline) >= 6:
        open_ms, o, h, low, c, v = kline[:6]
        if type(open_ms) is int and type(o) is type(h) is type(low) is type(c) is type(v) is str:
            try:
                return [open_ms, float(o), float(h), float(low), float(c), float(v)]
            except ValueError:
                pass
    return exchange.parse_ohlcv(kline, market)


class Windowed(Dialect):
    """ccxt asks for ``[since, since + limit x the timeframe's length)``, whatever the candles in it."""

    name = "windowed"

    def page_request(
        self, client: ExchangeClient, symbol: str, timeframe: str, since: datetime, now: datetime, at_most: int
    ) -> PageRequest:
        limit = min(at_most, client.page_limit(symbol))
        return PageRequest(limit=limit, window_end=_window_end(client, timeframe, since, limit))


def _window_end(client: ExchangeClient, timeframe: str, since: datetime, limit: int) -> datetime:
    return since + limit * timedelta(seconds=client.ccxt.parse_timeframe(timeframe))


OKX_RECENT_CANDLES = 1440  # the recent endpoint keeps the latest 1,440 candles
OKX_RECENT_MARGIN = 40  # candles of leeway for clock skew before the history endpoint is used
OKX_RECENT_LIMIT = 300
OKX_HISTORY_LIMIT = 100


class Okx(Windowed):
    name = "okx"
    settle = timedelta(0)  # its confirm field says which candles are final
    candle_method = "publicGetMarketCandles"

    def page_request(
        self, client: ExchangeClient, symbol: str, timeframe: str, since: datetime, now: datetime, at_most: int
    ) -> PageRequest:
        step = FIXED_STEPS.get(timeframe, timedelta(days=31))
        recent = since >= floor_open(now, timeframe) - (OKX_RECENT_CANDLES - OKX_RECENT_MARGIN) * step
        limit = min(at_most, OKX_RECENT_LIMIT if recent else OKX_HISTORY_LIMIT)
        # ccxt asks for before = since - 1 and after = since + limit x its timeframe length
        return PageRequest(
            limit=limit,
            params={"type": "Candles" if recent else "HistoryCandles"},
            window_end=_window_end(client, timeframe, since, limit),
        )

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list) or "code" not in answer:
            return 'an answer without "code" and a "data" list'
        return None

    async def fetch_ohlcv(
        self, exchange: Any, symbol: str, timeframe: str, since_ms: int, limit: int, params: dict[str, Any]
    ) -> Any:
        """Spot candles as ccxt's ``fetch_ohlcv`` asks for them (``before``/``after`` around the window),
        each read with its ``confirm`` field as a seventh value (``False``: still open); other markets
        go through ``fetch_ohlcv``."""
        market = exchange.market(symbol)
        if not market["spot"] or set(params) - {"type"}:
            return await super().fetch_ohlcv(exchange, symbol, timeframe, since_ms, limit, params)
        duration_ms = exchange.parse_timeframe(timeframe) * 1000
        bar = exchange.timeframes[timeframe]
        if duration_ms >= 21_600_000:
            bar += "utc"  # 6 hours and longer, aligned on UTC, as ccxt asks for them
        limit = min(limit, OKX_RECENT_LIMIT)
        request = {
            "instId": market["id"],
            "bar": bar,
            "limit": limit,
            "before": max(0, since_ms - 1),
            "after": since_ms + duration_ms * limit,
        }
        if params.get("type") == "HistoryCandles":
            answer = await exchange.publicGetMarketHistoryCandles(request)
        else:
            answer = await exchange.publicGetMarketCandles(request)
        rows = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(rows, list):  # checked on arrival (ExchangeClient): ccxt read it otherwise
            raise ccxt.BadResponse(f"okx candles answer read as a {type(answer).__name__} without a data list")
        return [_okx_candle(exchange, row, market) for row in rows]


def _okx_candle(exchange: Any, row: Any, market: Any) -> Any:
    """``[ts, "open", "high", "low", "close", "vol", ..., "confirm"]`` read at once as ``[open ms, open,
    high, low, close, volume, final]``; any other shape is left to ccxt (final by the clock alone)."""
    if type(row) is list and len(row) >= 9 and all(type(value) is str for value in row[:6]):
        try:
            values = [float(value) for value in row[1:6]]
            return [int(row[0]), *values, row[8] != "0"]
        except ValueError:
            pass
    return exchange.parse_ohlcv(row, market)


class Kraken(Dialect):
    """Every answer is ``{"error": [...], "result": ...}``, errors included (with HTTP 200)."""

    name = "kraken"
    candle_method = "publicGetOHLC"

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if not isinstance(answer, dict) or not isinstance(answer.get("error"), list):
            return 'an answer without an "error" list'
        if answer["error"]:
            return None  # ccxt reads the error
        result = answer.get("result")
        if not isinstance(result, dict):
            return 'an answer without errors and without a "result" object'
        if path.endswith("/OHLC") and not any(isinstance(value, list) for value in result.values()):
            return "an OHLC answer without a list of candles"
        return None


class Bybit(Dialect):
    """Every answer is ``{"retCode", "retMsg", "result": {...}}``, errors included (with HTTP 200)."""

    name = "bybit"
    candle_method = "publicGetV5MarketKline"

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if not isinstance(answer, dict) or "retCode" not in answer:
            return 'an answer without "retCode"'
        if answer["retCode"] not in (0, "0"):
            return None  # ccxt reads the error
        result = answer.get("result")
        if not isinstance(result, dict):
            return 'a successful answer without a "result" object'
        if path.endswith(("/kline", "/instruments-info")) and not isinstance(result.get("list"), list):
            return 'an answer without a "list" in its result'
        return None


class Kucoin(Windowed):
    """Windows of at most 1,500 candles; every answer is ``{"code", "data"}``."""

    name = "kucoin"
    candle_method = "publicGetMarketCandles"

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if not isinstance(answer, dict) or "code" not in answer:
            return 'an answer without "code"'
        if answer["code"] != "200000":
            return None  # ccxt reads the error
        if "data" not in answer:
            return 'a successful answer without "data"'
        if path.endswith(("/market/candles", "/symbols")) and not isinstance(answer["data"], list):
            return 'an answer whose "data" is not a list'
        return None


class Coinbase(Windowed):
    """Windows of at most 300 candles (ccxt's); candles in ``{"candles": [...]}``."""

    name = "coinbase"
    candle_method = "v3PublicGetBrokerageMarketProductsProductIdCandles"

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if path.endswith("/candles") and not _has_list(answer, "candles"):
            return 'a candles answer without a "candles" list'
        if path.endswith("/market/products") and not _has_list(answer, "products"):
            return 'a products answer without a "products" list'
        if path.startswith("/v2/") and not (isinstance(answer, dict) and "data" in answer):
            return 'an answer without "data"'
        return None


class Gate(Windowed):
    """Windows of at most 1,000 candles; candles, markets and currencies are JSON lists."""

    name = "gate"
    candle_method = "publicSpotGetCandlesticks"

    def answer_problem(self, path: str, answer: Any) -> str | None:
        if path.endswith(("/candlesticks", "/currency_pairs", "/currencies")) and not isinstance(answer, list):
            return "an answer that is not a list"
        return None


def implicit_endpoint(exchange: Any, method: str) -> Entry[Any]:
    """ccxt's definition of the implicit API method ``method`` of ``exchange`` (its path, api, HTTP
    method and rate-limit config), as the exchange's class declares it."""
    for cls in type(exchange).__mro__:
        endpoint = vars(cls).get(method)
        if isinstance(endpoint, Entry):
            return endpoint
    raise AttributeError(f"{exchange.id} has no implicit API method {method}")


def _has_list(answer: Any, key: str) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get(key), list)
