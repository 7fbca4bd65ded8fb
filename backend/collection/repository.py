"""SQL for stored candles: bulk idempotent writes, what a series knows, its holes, and reads."""

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
       (SELECT earliest_available FROM candle_series
        WHERE exchange = $1 AND symbol = $2 AND timeframe = $3) AS earliest_available
"""
SET_EARLIEST_AVAILABLE = """
INSERT INTO candle_series (exchange, symbol, timeframe, earliest_available) VALUES ($1, $2, $3, $4)
ON CONFLICT (exchange, symbol, timeframe) DO UPDATE SET earliest_available = excluded.earliest_available
"""
# Holes among the stored candles from $4 on (and before the first one, when the window starts
# earlier), skipping those the exchange confirmed empty. $5 is the timeframe's interval.
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
      AND e.range_start <= holes.hole_start AND e.range_end >= holes.hole_end
)
ORDER BY hole_start
LIMIT $6
"""
REMEMBER_EMPTY_RANGE = """
INSERT INTO candle_empty_ranges (exchange, symbol, timeframe, range_start, range_end) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (exchange, symbol, timeframe, range_start)
DO UPDATE SET range_end = greatest(candle_empty_ranges.range_end, excluded.range_end), confirmed_at = now()
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
    earliest_available: datetime | None


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
    return SeriesState(newest=row["newest"], earliest_available=row["earliest_available"])


async def set_earliest_available(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, earliest: datetime
) -> None:
    await db.execute(SET_EARLIEST_AVAILABLE, exchange, symbol, timeframe, earliest)


async def find_holes(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, since: datetime, limit: int
) -> list[Hole]:
    """Missing stretches of the series from ``since`` on, oldest first, not known to be empty."""
    rows = await db.fetch(FIND_HOLES, exchange, symbol, timeframe, since, SQL_INTERVALS[timeframe], limit)
    return [Hole(start=row["hole_start"], end=row["hole_end"]) for row in rows]


async def remember_empty_range(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
) -> None:
    """The exchange confirmed it has no candles from ``start`` up to (not including) ``end``."""
    await db.execute(REMEMBER_EMPTY_RANGE, exchange, symbol, timeframe, start, end)


async def read_candles(db: Pool | Connection, query: CandleQuery) -> list[Any]:
    """The candles ``query`` asks for, oldest first."""
    return await db.fetch(READ_CANDLES, *query.arguments())


async def coverage(db: Pool | Connection, *, exchange: str, symbol: str, largest_gaps: int) -> list[Any]:
    timeframes = list(SQL_INTERVALS)
    return await db.fetch(
        COVERAGE, exchange, symbol, timeframes, [SQL_INTERVALS[tf] for tf in timeframes], largest_gaps
    )
