"""Routes reading stored candles back (OHLCV rows as JSON or streamed CSV, per-series coverage), and
the admin routes that make the collector ask the exchange again: about stretches it confirmed empty,
and about a stored range, repairing what differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody, Parameter
from litestar.response import Stream

from backend.auth.guards import writes_need_admin
from backend.collection import repository
from backend.collection.collector import Collector
from backend.collection.profiles import ExchangeProfile, profile_for
from backend.collection.repository import CandleQuery, EmptyRange
from backend.collection.schemas import (
    CandleRow,
    ConfirmationsCleared,
    Gap,
    Reverified,
    ReverifyRequest,
    SeriesCoverage,
)
from backend.collection.timeframes import (
    candles_between,
    candles_in,
    floor_open,
    from_minute,
    next_open,
    shift_open,
    to_minute,
)
from backend.configs.schemas import Timeframe
from backend.db.pool import Pool
from backend.dependencies import PoolDependency
from backend.monitoring.freshness import SeriesFreshness, candle_lag_seconds, read_series_freshness
from backend.settings import Settings
from backend.web.headers import attachment
from backend.web.openapi import csv_download
from backend.web.params import parse_time, time_parameter

CANDLE_ROWS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 6,
        "maxItems": 6,
        "description": "[open time in ms since the epoch (UTC), open, high, low, close, volume]",
    },
}

MAX_CANDLES = 5000
LARGEST_GAPS = 5
CSV_HEADER = "timestamp,datetime,open,high,low,close,volume\r\n"
CSV_CHUNK_ROWS = 500

Exchange = Annotated[str, Parameter(min_length=1, max_length=40, description="ccxt exchange id")]
Symbol = Annotated[str, Parameter(min_length=3, max_length=41, description="BASE/QUOTE, e.g. BTC/USDT")]


MINUTE_MS = 60_000


def _csv_line(row: CandleRow) -> str:
    open_ms = row[0]
    values = ",".join(map(repr, row[1:]))
    iso = from_minute(open_ms // MINUTE_MS).isoformat().replace("+00:00", "Z")
    return f"{open_ms},{iso},{values}\r\n"


async def _csv(pool: Pool, query: CandleQuery) -> AsyncIterator[str]:
    """At most MAX_CANDLES rows, read at once so that no connection waits on a slow client."""
    yield CSV_HEADER
    rows = await repository.read_candles(pool, query)
    for start in range(0, len(rows), CSV_CHUNK_ROWS):
        yield "".join(_csv_line(row) for row in rows[start : start + CSV_CHUNK_ROWS])


class MarketDataController(Controller):
    path = "/api/v1/market-data"
    tags = ["market data"]

    @get("/ohlcv", operation_id="readOhlcv", opt={"openapi": csv_download(json_schema=CANDLE_ROWS_SCHEMA)})
    async def read_ohlcv(
        self,
        request: Request[Any, Any, Any],
        pool: PoolDependency,
        symbol: Symbol,
        timeframe: FromQuery[Timeframe],
        exchange: Exchange = "binance",
        start: Annotated[str | None, time_parameter("First open time (ISO 8601, UTC if no zone)")] = None,
        end: Annotated[str | None, time_parameter("Open times before this one only")] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_CANDLES)] = 1000,
        format: Annotated[
            Literal["json", "csv"] | None, Parameter(description="csv streams CSV; so does Accept: text/csv")
        ] = None,
    ) -> Response[Any]:
        """Stored candles, oldest first, as `[ts_ms, open, high, low, close, volume]` rows.

        With `start`: the first `limit` candles from there (before `end`). Without: the newest
        `limit` candles (before `end`). `format=csv` or `Accept: text/csv` streams the same candles
        as CSV with a header row.
        """
        query = CandleQuery(
            exchange=exchange.lower(),
            symbol=symbol.upper(),
            timeframe=timeframe,
            start=None if start is None else parse_time("start", start)[0],
            end=None if end is None else parse_time("end", end)[0],
            limit=limit,
        )
        wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
        if wants_csv:
            filename = f"{query.exchange}_{query.symbol.replace('/', '-')}_{timeframe}.csv"
            return Stream(
                _csv(pool, query),
                media_type="text/csv",
                headers={"Content-Disposition": attachment(filename)},
            )
        candles: list[CandleRow] = await repository.read_candles(pool, query)
        return Response(candles)

    @get("/coverage", operation_id="readCoverage")
    async def read_coverage(
        self, request: Request[Any, Any, Any], pool: PoolDependency, symbol: Symbol, exchange: Exchange = "binance"
    ) -> list[SeriesCoverage]:
        """Per stored series of the market: span, count, expected count, its largest gaps, and its
        freshness (the lag since its newest candle closed; whether it is stale, when a config collects it)."""
        exchange, symbol = exchange.lower(), symbol.upper()
        now: datetime = getattr(request.app.state, "clock", _utc_now)()  # tests set the collector's clock
        settings: Settings = request.app.state.settings
        profile = profile_for(exchange)
        rows = await repository.coverage(pool, exchange=exchange, symbol=symbol, largest_gaps=LARGEST_GAPS)
        rejected = await repository.count_rejected(pool, exchange=exchange, symbol=symbol)
        empty = await repository.empty_ranges(pool, exchange=exchange, symbol=symbol)
        collected = {
            series.timeframe: series
            for series in await read_series_freshness(
                pool, now=now, settings=request.app.state.settings, exchange=exchange, symbol=symbol
            )
        }
        coverage = []
        for row in rows:
            timeframe = row["timeframe"]
            empty_here = [r for r in empty if r.timeframe == timeframe]
            reach = await _reach(pool, profile, row, empty_here, settings.candle_retention_days.get(timeframe), now)
            coverage.append(
                _coverage(exchange, symbol, row, empty_here, rejected, collected.get(timeframe), reach, now)
            )
        return coverage


class ConfirmedEmptyController(Controller):
    path = "/api/v1/admin/data-collection/confirmed-empty"
    tags = ["market data"]
    guards = [writes_need_admin]

    @delete("/", operation_id="clearConfirmedEmpty", status_code=200)
    async def clear_confirmed_empty(
        self,
        pool: PoolDependency,
        symbol: Symbol,
        exchange: Exchange = "binance",
        timeframe: Annotated[Timeframe | None, Parameter(description="One timeframe; all when absent")] = None,
    ) -> ConfirmationsCleared:
        """Forget what the exchange confirmed it does not have, for a market's series (admin).

        Stretches confirmed empty (no trades) and "no history before" marks are asked for again by
        the next run (confirmations also expire by themselves after `EMPTY_RANGE_MAX_AGE_HOURS`).
        """
        exchange, symbol = exchange.lower(), symbol.upper()
        ranges, starts = await repository.forget_confirmations(
            pool, exchange=exchange, symbol=symbol, timeframe=timeframe
        )
        return ConfirmationsCleared(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            empty_ranges_cleared=ranges,
            history_starts_cleared=starts,
        )


class ReverifyController(Controller):
    path = "/api/v1/admin/data-collection/reverify"
    tags = ["market data"]
    guards = [writes_need_admin]

    @post("/", operation_id="reverifyCandles", status_code=200)
    async def reverify(self, request: Request[Any, Any, Any], data: JSONBody[ReverifyRequest]) -> Reverified:
        """Compare a stored range of one series with the exchange, and repair what differs (admin).

        The exchange is asked again for the final candles from `start` to before `end`: those
        whose values it changed since they were stored are rewritten (`revised`), those it has that
        were not stored are stored (`inserted`), and stored ones it no longer sends are counted
        (`not_at_exchange`) and kept. A longer range than 10,000 candles is compared up to its first
        10,000, and the answer comes within REVERIFY_SECONDS (20 s): what the exchange has not sent
        by then is left for the next request. `end` in the answer says where the comparison
        stopped (send the next request from there); `error_type` `Timeout` when the exchange sent
        nothing in that time. An `end` not after `start` compares nothing. An exchange error stops
        the comparison there: `error_type` and `error` say why, what came before is repaired.
        """
        collector: Collector = request.app.state.collector
        return await collector.reverify(data)


def _confirmed_empty(ranges: list[EmptyRange], first: datetime, last: datetime, timeframe: str) -> int:
    """Candles from ``first`` to ``last`` inside stretches confirmed empty (overlaps counted once)."""
    count, covered_until = 0, first
    for stretch in sorted(ranges, key=lambda r: r.start):
        start, end = max(stretch.start, covered_until), min(stretch.end, next_open(last, timeframe))
        if end > start:
            count += candles_in(start, end, timeframe)
            covered_until = end
    return count


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Reach:
    """How far back the exchange serves a series, and what is not stored of it beyond that."""

    verified: bool
    description: str | None
    start: datetime | None
    beyond_in_span: int  # from the first to the last stored candle
    beyond_before_first: int  # from the oldest candle a config asks for to the first stored one


async def _reach(
    pool: Pool, profile: ExchangeProfile, row: Any, empty: list[EmptyRange], retention_days: int | None, now: datetime
) -> _Reach:
    """Candles not stored, not confirmed empty, and older than what the exchange serves now."""
    timeframe: str = row["timeframe"]
    start = profile.reach_start(now, timeframe)
    in_span = before_first = 0
    if start is not None:
        for after, following in await repository.gaps_before(pool, series_id=row["series_id"], minute=to_minute(start)):
            in_span += _unconfirmed(
                empty, next_open(from_minute(after), timeframe), min(from_minute(following), start), timeframe
            )
        days = row["backfill_days"] if retention_days is None else min(row["backfill_days"] or 0, retention_days)
        if days:
            wanted_from = floor_open(now - timedelta(days=days), timeframe)
            before_first = _unconfirmed(empty, wanted_from, min(from_minute(row["first_minute"]), start), timeframe)
    return _Reach(profile.verified, profile.describe_reach(timeframe), start, in_span, before_first)


def _unconfirmed(empty: list[EmptyRange], start: datetime, end: datetime, timeframe: str) -> int:
    """Candles from ``start`` up to ``end`` (open times on the grid) outside the stretches confirmed empty."""
    if end <= start:
        return 0
    return candles_in(start, end, timeframe) - _confirmed_empty(empty, start, shift_open(end, timeframe, -1), timeframe)


def _gap(after_minute: int, next_minute: int, timeframe: str) -> Gap:
    start, end = next_open(from_minute(after_minute), timeframe), from_minute(next_minute)
    return Gap(start=start, end=end, missing_candles=candles_between(start, end, timeframe) - 1)


def _coverage(
    exchange: str,
    symbol: str,
    row: Any,
    empty: list[EmptyRange],
    rejected: dict[str, int],
    freshness: SeriesFreshness | None,
    reach: _Reach,
    now: datetime,
) -> SeriesCoverage:
    timeframe: str = row["timeframe"]
    first, last = from_minute(row["first_minute"]), from_minute(row["last_minute"])
    expected = candles_between(first, last, timeframe)
    confirmed_empty = _confirmed_empty(empty, first, last, timeframe)
    return SeriesCoverage(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        first_candle=first,
        last_candle=last,
        candles=row["candles"],
        expected_candles=expected,
        missing_candles=expected - row["candles"] - confirmed_empty - reach.beyond_in_span,
        confirmed_empty_candles=confirmed_empty,
        rejected_candles=rejected.get(timeframe, 0),
        gap_count=row["gap_count"],
        largest_gaps=[_gap(after, following, timeframe) for after, following in row["largest_gaps"]],
        revised_candles=row["revised_candles"],
        lag_seconds=candle_lag_seconds(last, timeframe, now=now),
        stale_after_seconds=None if freshness is None else freshness.stale_after_seconds,
        stale=None if freshness is None else freshness.stale,
        exchange_verified=reach.verified,
        reach=reach.description,
        reach_start=reach.start,
        beyond_reach_candles=reach.beyond_in_span + reach.beyond_before_first,
    )
