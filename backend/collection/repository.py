"""SQL for stored candles: bulk idempotent writes, what a series knows, its holes, and reads.

What a series knows beside its candles: where the exchange's history begins (and from which
window start that was asked), stretches the exchange confirmed empty (asked again once older
than a given age), and candles it sent that broke the rules (never stored, counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from backend.collection.timeframes import SQL_INTERVALS
from backend.db.pool import Connection, Pool

# A page is COPied into this per-connection staging table, then merged in one statement.
CREATE_STAGING = """
CREATE TEMPORARY TABLE IF NOT EXISTS candles_staging (
    open_time timestamptz, open double precision, high double precision, low double precision,
    close double precision, volume double precision
) ON COMMIT DELETE ROWS
"""
STAGING_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
# Inserts new candles and rewrites a stored one only when the exchange changed it; the command's
# row count is then exactly the candles inserted or changed.
MERGE_STAGED = """
INSERT INTO candles AS c (exchange, symbol, timeframe, open_time, open, high, low, close, volume)
SELECT $1, $2, $3, open_time, open, high, low, close, volume FROM candles_staging
ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE
SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume
WHERE (c.open, c.high, c.low, c.close, c.volume)
    IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)
"""
SERIES_STATE = """
SELECT (SELECT max(open_time) FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3) AS newest,
       s.earliest_available, s.earliest_asked_from
FROM (SELECT) AS one
LEFT JOIN candle_series AS s ON s.exchange = $1 AND s.symbol = $2 AND s.timeframe = $3
"""
SET_EARLIEST_AVAILABLE = """
INSERT INTO candle_series (exchange, symbol, timeframe, earliest_available, earliest_asked_from)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (exchange, symbol, timeframe)
DO UPDATE SET earliest_available = excluded.earliest_available, earliest_asked_from = excluded.earliest_asked_from
"""
# Holes among the stored candles from $4 on (and before the first one, when the window starts
# earlier), skipping those the exchange confirmed empty since $7. $5 is the timeframe's interval.
FIND_HOLES = """
WITH stored AS (
    SELECT open_time, lead(open_time) OVER (ORDER BY open_time) AS next_time
    FROM candles WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND open_time >= $4
), holes AS (
    SELECT open_time + $5::text::interval AS hole_start, next_time AS hole_end
    FROM stored WHERE next_time > open_time + $5::text::interval
    UNION ALL
    SELECT $4, min(open_time) FROM stored HAVING min(open_time) > $4
)
SELECT hole_start, hole_end FROM holes
WHERE NOT EXISTS (
    SELECT FROM candle_empty_ranges e
    WHERE e.exchange = $1 AND e.symbol = $2 AND e.timeframe = $3
      AND e.range_start <= holes.hole_start AND e.range_end >= holes.hole_end AND e.confirmed_at > $7
)
ORDER BY hole_start
LIMIT $6
"""
REMEMBER_EMPTY_RANGE = """
INSERT INTO candle_empty_ranges (exchange, symbol, timeframe, range_start, range_end, confirmed_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (exchange, symbol, timeframe, range_start)
DO UPDATE SET range_end = greatest(candle_empty_ranges.range_end, excluded.range_end),
              confirmed_at = excluded.confirmed_at
"""
# Before a hole is asked again: what was confirmed about it no longer holds once re-checked.
FORGET_EMPTY_RANGES_IN = """
DELETE FROM candle_empty_ranges
WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND range_start < $5 AND range_end > $4
"""
EMPTY_RANGES = """
SELECT timeframe, range_start, range_end FROM candle_empty_ranges
WHERE exchange = $1 AND symbol = $2
ORDER BY timeframe, range_start
"""
# $3 NULL: every timeframe of the market
CLEAR_EMPTY_RANGES = """
DELETE FROM candle_empty_ranges WHERE exchange = $1 AND symbol = $2 AND ($3::text IS NULL OR timeframe = $3)
"""
CLEAR_EARLIEST_AVAILABLE = """
UPDATE candle_series SET earliest_available = NULL, earliest_asked_from = NULL
WHERE exchange = $1 AND symbol = $2 AND ($3::text IS NULL OR timeframe = $3) AND earliest_available IS NOT NULL
"""
RECORD_REJECTIONS = """
INSERT INTO candle_rejections (exchange, symbol, timeframe, open_time, reason, rejected_at)
SELECT $1, $2, $3, open_time, reason, $6 FROM unnest($4::timestamptz[], $5::text[]) AS r(open_time, reason)
ON CONFLICT (exchange, symbol, timeframe, open_time)
DO UPDATE SET reason = excluded.reason, rejected_at = excluded.rejected_at
"""
REJECTED_OPEN_TIMES = """
SELECT open_time FROM candle_rejections
WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND open_time >= $4
"""
# Per timeframe of one market: rejected candles that no good candle has replaced since.
COUNT_REJECTED = """
SELECT r.timeframe, count(*) AS rejected FROM candle_rejections AS r
WHERE r.exchange = $1 AND r.symbol = $2 AND NOT EXISTS (
    SELECT FROM candles AS c
    WHERE c.exchange = r.exchange AND c.symbol = r.symbol AND c.timeframe = r.timeframe AND c.open_time = r.open_time
)
GROUP BY r.timeframe
"""
# The newest $6 candles before $5 (or the first $6 from $4 on), returned oldest first.
READ_CANDLES = """
SELECT * FROM (
    SELECT open_time, open, high, low, close, volume FROM candles
    WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
      AND ($4::timestamptz IS NULL OR open_time >= $4) AND ($5::timestamptz IS NULL OR open_time < $5)
    ORDER BY CASE WHEN $4::timestamptz IS NULL THEN open_time END DESC, open_time
    LIMIT $6
) AS page ORDER BY open_time
"""
# Per stored series of one market: its span and count, its holes ($3/$4: each timeframe's
# interval), and the $5 largest of them.
COVERAGE = """
WITH steps AS (
    SELECT timeframe, step FROM unnest($3::text[], $4::text[]::interval[]) AS s(timeframe, step)
), series AS (
    SELECT timeframe, min(open_time) AS first_candle, max(open_time) AS last_candle, count(*) AS candles
    FROM candles WHERE exchange = $1 AND symbol = $2 GROUP BY timeframe
), gaps AS (
    SELECT n.timeframe, n.open_time + s.step AS gap_start, n.next_time AS gap_end
    FROM (
        SELECT timeframe, open_time, lead(open_time) OVER (PARTITION BY timeframe ORDER BY open_time) AS next_time
        FROM candles WHERE exchange = $1 AND symbol = $2
    ) AS n JOIN steps AS s USING (timeframe)
    WHERE n.next_time > n.open_time + s.step
)
SELECT s.timeframe, s.first_candle, s.last_candle, s.candles,
       (SELECT count(*) FROM gaps AS g WHERE g.timeframe = s.timeframe) AS gap_count,
       ARRAY(
           SELECT ARRAY[g.gap_start, g.gap_end] FROM gaps AS g WHERE g.timeframe = s.timeframe
           ORDER BY g.gap_end - g.gap_start DESC, g.gap_start LIMIT $5
       ) AS largest_gaps
FROM series AS s
ORDER BY s.timeframe
"""

CandleRow = tuple[datetime, float, float, float, float, float]


class SeriesState(msgspec.Struct, frozen=True):
    newest: datetime | None
    earliest_available: datetime | None  # the exchange said it has nothing before this...
    earliest_asked_from: datetime | None  # ...when asked for candles from this time on


class CandleQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Candles of one series: the first ``limit`` from ``start`` on, else the newest before ``end``."""

    exchange: str
    symbol: str
    timeframe: str
    start: datetime | None
    end: datetime | None
    limit: int

    def arguments(self) -> tuple[object, ...]:
        return (self.exchange, self.symbol, self.timeframe, self.start, self.end, self.limit)


class Hole(msgspec.Struct, frozen=True):
    start: datetime  # first missing open time
    end: datetime  # open time of the next stored candle


class EmptyRange(msgspec.Struct, frozen=True):
    timeframe: str
    start: datetime
    end: datetime  # excluded


async def store_candles(pool: Pool, *, exchange: str, symbol: str, timeframe: str, rows: Sequence[CandleRow]) -> int:
    """Store one page in its own transaction; returns how many candles were inserted or changed.

    ``rows`` must not repeat an open time.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(CREATE_STAGING)
        await conn.copy_records_to_table("candles_staging", records=rows, columns=STAGING_COLUMNS)
        status = await conn.execute(MERGE_STAGED, exchange, symbol, timeframe)
    return int(status.rsplit(" ", 1)[-1])


async def series_state(db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str) -> SeriesState:
    row = await db.fetchrow(SERIES_STATE, exchange, symbol, timeframe)
    assert row is not None
    return SeriesState(
        newest=row["newest"],
        earliest_available=row["earliest_available"],
        earliest_asked_from=row["earliest_asked_from"],
    )


async def set_earliest_available(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, earliest: datetime, asked_from: datetime
) -> None:
    """Asked for candles from ``asked_from`` on, the exchange's first one opened at ``earliest``."""
    await db.execute(SET_EARLIEST_AVAILABLE, exchange, symbol, timeframe, earliest, asked_from)


async def find_holes(
    db: Pool | Connection,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    since: datetime,
    confirmed_after: datetime,
    limit: int,
) -> list[Hole]:
    """Missing stretches of the series from ``since`` on, oldest first.

    A stretch the exchange confirmed empty after ``confirmed_after`` is not one; older
    confirmations are asked again.
    """
    rows = await db.fetch(
        FIND_HOLES, exchange, symbol, timeframe, since, SQL_INTERVALS[timeframe], limit, confirmed_after
    )
    return [Hole(start=row["hole_start"], end=row["hole_end"]) for row in rows]


async def remember_empty_range(
    db: Pool | Connection,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    confirmed_at: datetime,
) -> None:
    """The exchange confirmed it has no candles from ``start`` up to (not including) ``end``."""
    await db.execute(REMEMBER_EMPTY_RANGE, exchange, symbol, timeframe, start, end, confirmed_at)


async def forget_empty_ranges_in(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
) -> None:
    """Forget the confirmed-empty stretches overlapping ``[start, end)`` (it is being asked again)."""
    await db.execute(FORGET_EMPTY_RANGES_IN, exchange, symbol, timeframe, start, end)


async def empty_ranges(db: Pool | Connection, *, exchange: str, symbol: str) -> list[EmptyRange]:
    """Every stretch the exchange confirmed empty, of every timeframe of one market."""
    rows = await db.fetch(EMPTY_RANGES, exchange, symbol)
    return [EmptyRange(timeframe=row["timeframe"], start=row["range_start"], end=row["range_end"]) for row in rows]


async def forget_confirmations(db: Pool, *, exchange: str, symbol: str, timeframe: str | None) -> tuple[int, int]:
    """Forget what the exchange confirmed it does not have (empty stretches, where history begins).

    ``timeframe`` None: every timeframe of the market. Returns (empty ranges, history starts) forgotten.
    """
    async with db.acquire() as conn, conn.transaction():
        ranges = await conn.execute(CLEAR_EMPTY_RANGES, exchange, symbol, timeframe)
        starts = await conn.execute(CLEAR_EARLIEST_AVAILABLE, exchange, symbol, timeframe)
    return int(ranges.rsplit(" ", 1)[-1]), int(starts.rsplit(" ", 1)[-1])


async def record_rejected_candles(
    db: Pool | Connection,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    rejections: Sequence[tuple[datetime, str]],
    rejected_at: datetime,
) -> None:
    """The exchange kept sending these (open time, broken rule) candles: they were not stored."""
    times = [open_time for open_time, _ in rejections]
    reasons = [reason for _, reason in rejections]
    await db.execute(RECORD_REJECTIONS, exchange, symbol, timeframe, times, reasons, rejected_at)


async def rejected_open_times(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, since: datetime
) -> set[datetime]:
    """Open times from ``since`` on of candles the exchange sent broken before."""
    rows = await db.fetch(REJECTED_OPEN_TIMES, exchange, symbol, timeframe, since)
    return {row["open_time"] for row in rows}


async def count_rejected(db: Pool | Connection, *, exchange: str, symbol: str) -> dict[str, int]:
    """Per timeframe of one market: candles rejected and not replaced by a good one since."""
    rows = await db.fetch(COUNT_REJECTED, exchange, symbol)
    return {row["timeframe"]: row["rejected"] for row in rows}


async def read_candles(db: Pool | Connection, query: CandleQuery) -> list[Any]:
    """The candles ``query`` asks for, oldest first."""
    return await db.fetch(READ_CANDLES, *query.arguments())


async def coverage(db: Pool | Connection, *, exchange: str, symbol: str, largest_gaps: int) -> list[Any]:
    timeframes = list(SQL_INTERVALS)
    return await db.fetch(
        COVERAGE, exchange, symbol, timeframes, [SQL_INTERVALS[tf] for tf in timeframes], largest_gaps
    )
