"""SQL for stored candles: series, time partitions, appends and merges, the coverage summary, reads.

Candles live in ``candle_data`` keyed by (series id, open minute), partitioned per timeframe and
period (``db/migrations/0006_compact_partitioned_candles.sql``). Writers go through
:mod:`backend.collection.storage`, which keeps the summary (``candle_counts``, ``candle_gaps``)
in the same transaction; coverage and hole finding read the summary, never the candles.

What a series knows beside its candles: where the exchange's history begins (and from which
window start that was asked), stretches the exchange confirmed empty (asked again once older
than a given age), and candles it sent that broke the rules (never stored, counted).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime
from itertools import repeat
from operator import itemgetter, mul
from typing import Any, Literal

import asyncpg
import msgspec

from backend.collection import schemas
from backend.collection.segments import decode_values, open_minutes, segment_span_minutes, segment_start
from backend.collection.summary import Period, SummaryChange
from backend.collection.timeframes import EPOCH, MINUTE, SHORTEST_MONTH_MINUTES, STEP_MINUTES, from_minute, to_minute
from backend.db.pool import Connection, Pool
from backend.runs import repository as runs
from backend.runs.schemas import RunConfig

# A series and what a run needs of it: its first and newest candle, where its newest gap ends (gaps
# lie between consecutive stored candles, so the one after the latest candle ends last), where its
# history begins, and the open times of candles the exchange sent broken (rare: one array, usually
# empty). ``s`` is the series' row.
SERIES_STATE = """
s.id AS series_id, s.timeframe, s.earliest_available, s.earliest_asked_from, c.first, c.newest,
(SELECT g.next_minute FROM candle_gaps AS g WHERE g.series_id = s.id ORDER BY g.after_minute DESC LIMIT 1)
    AS newest_gap_end,
ARRAY(
    SELECT open_time FROM candle_rejections AS r
    WHERE r.exchange = s.exchange AND r.symbol = s.symbol AND r.timeframe = s.timeframe
) AS rejected_open_times
"""
SERIES_COUNTS = """
CROSS JOIN LATERAL (
    SELECT min(first_minute) AS first, max(last_minute) AS newest FROM candle_counts WHERE series_id = s.id
) AS c
"""
SERIES = f"""
SELECT {SERIES_STATE} FROM candle_series AS s {SERIES_COUNTS}
WHERE s.exchange = $1 AND s.symbol = $2 AND s.timeframe = $3
"""
# A process begins queued runs (``runs.repository.BEGIN_RUNS_STEPS``) and reads the stored series of
# their configs' timeframes in the same statement: one row per series stored (one row without a
# series when none is), each with its run's id and config's columns. No row: the run is not running.
BEGIN_RUNS_READING_SERIES = f"""
{runs.BEGIN_RUNS_STEPS}, series AS (
    SELECT config.run_id AS series_run_id, {SERIES_STATE}
    FROM config
    JOIN candle_series AS s
        ON s.exchange = config.exchange AND s.symbol = config.symbol AND s.timeframe = ANY(config.timeframes)
    {SERIES_COUNTS}
)
SELECT run.run_id AS begun_run_id, config.*, series.*
FROM run LEFT JOIN config USING (run_id) LEFT JOIN series ON series_run_id = run.run_id
"""
# A series id is its timeframe's block plus a number (see the migration).
CREATE_SERIES = """
INSERT INTO candle_series (id, exchange, symbol, timeframe)
SELECT t.series_block * 100000000 + nextval('candle_series_number'), $1, $2, $3
FROM candle_timeframes() AS t WHERE t.timeframe = $3
ON CONFLICT (exchange, symbol, timeframe) DO NOTHING
"""
SET_EARLIEST_AVAILABLE = """
UPDATE candle_series SET earliest_available = $4, earliest_asked_from = $5
WHERE exchange = $1 AND symbol = $2 AND timeframe = $3
"""
CREATE_PARTITIONS = "SELECT partition_name, period_start, period_end FROM create_candle_partitions($1, $2, $3)"
# Taken first in each writing transaction: one writer per series at a time. NEWEST then reads the
# newest stored candle as that writer must see it (in a statement of its own: a statement's
# snapshot is older than the lock it waited for).
LOCK_SERIES = "SELECT pg_advisory_xact_lock($1)"
NEWEST = "SELECT max(last_minute) FROM candle_counts WHERE series_id = $1"
CANDLE_COLUMNS = ("series_id", "open_minute", "open", "high", "low", "close", "volume")
# Inserts the candles not stored yet and rewrites a stored one only when the exchange changed it:
# the open minutes inserted (those not stored before the statement) and those inserted or changed,
# with the summary as it was before the statement around the page: first and last candle of the
# series, and the gaps overlapping the page's minutes. A candle stored in a segment (a compacted
# period) counts as stored: when the page changes it, a row of the new values replaces it (the next
# compaction folds it in). Callers hold the series lock, so nobody else inserts meanwhile.
MERGE = """
WITH page AS (
    SELECT * FROM unnest($2::integer[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
        AS p(open_minute, open, high, low, close, volume)
), stored AS (
    SELECT open_minute FROM candle_data WHERE series_id = $1 AND open_minute = ANY($2::integer[])
), compacted AS (
    SELECT d.* FROM candle_segments AS g
    CROSS JOIN LATERAL candle_segment_candles(g.series_id, g.first_minute, g.runs, g.body, g.raw_positions,
                                              g.raw_values) AS d
    WHERE g.series_id = $1 AND g.segment_start <= $2[cardinality($2)] AND g.segment_start > $2[1] - 530000
      AND g.last_minute >= $2[1] AND g.first_minute <= $2[cardinality($2)] AND d.open_minute = ANY($2::integer[])
), written AS (
    INSERT INTO candle_data AS c (series_id, open_minute, open, high, low, close, volume)
    SELECT $1, open_minute, open, high, low, close, volume FROM page
    WHERE open_minute IN (SELECT open_minute FROM stored) OR NOT EXISTS (
        SELECT FROM compacted AS k WHERE k.open_minute = page.open_minute
          AND (k.open, k.high, k.low, k.close, k.volume) = (page.open, page.high, page.low, page.close, page.volume)
    )
    ON CONFLICT (series_id, open_minute) DO UPDATE
    SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume
    WHERE (c.open, c.high, c.low, c.close, c.volume)
        IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)
    RETURNING open_minute
)
SELECT ARRAY(
           SELECT open_minute FROM page EXCEPT SELECT open_minute FROM stored EXCEPT SELECT open_minute FROM compacted
           ORDER BY 1
       ) AS inserted,
       ARRAY(SELECT open_minute FROM written ORDER BY 1) AS written,
       (SELECT min(first_minute) FROM candle_counts WHERE series_id = $1) AS first,
       (SELECT max(last_minute) FROM candle_counts WHERE series_id = $1) AS last,
       ARRAY(
           SELECT ARRAY[after_minute, next_minute] FROM candle_gaps
           WHERE series_id = $1 AND next_minute > (SELECT min(open_minute) FROM page)
             AND after_minute < (SELECT max(open_minute) FROM page)
           ORDER BY after_minute
       ) AS gaps
"""
# Applies a SummaryChange. The gaps removed and the gaps written never share a key.
APPLY_SUMMARY = """
WITH removed AS (
    DELETE FROM candle_gaps WHERE series_id = $1 AND after_minute = ANY($6::integer[])
), written AS (
    INSERT INTO candle_gaps AS g (series_id, after_minute, next_minute)
    SELECT $1, a, n FROM unnest($7::integer[], $8::integer[]) AS w(a, n)
    ON CONFLICT (series_id, after_minute) DO UPDATE SET next_minute = excluded.next_minute
)
INSERT INTO candle_counts AS c (series_id, period_start, candles, first_minute, last_minute)
SELECT $1, s, n, f, l FROM unnest($2::integer[], $3::integer[], $4::integer[], $5::integer[]) AS p(s, n, f, l)
ON CONFLICT (series_id, period_start) DO UPDATE
SET candles = c.candles + excluded.candles, first_minute = least(c.first_minute, excluded.first_minute),
    last_minute = greatest(c.last_minute, excluded.last_minute)
"""
# Holes of a series from minute $4 on, oldest first: its gaps, and the stretch before its first
# candle when the window starts earlier; minus those the exchange confirmed empty since $6.
FIND_HOLES = """
WITH series AS (
    SELECT s.id, t.step FROM candle_series AS s JOIN candle_timeframes() AS t USING (timeframe)
    WHERE s.exchange = $1 AND s.symbol = $2 AND s.timeframe = $3
), holes AS (
    SELECT greatest(candle_next_open(g.after_minute, series.step), $4) AS hole_start, g.next_minute AS hole_end
    FROM series JOIN candle_gaps AS g ON g.series_id = series.id
    WHERE g.next_minute > $4
    UNION ALL
    SELECT $4, min(c.first_minute) FROM series JOIN candle_counts AS c ON c.series_id = series.id
    HAVING min(c.first_minute) > $4
)
SELECT hole_start, hole_end FROM holes
WHERE NOT EXISTS (
    SELECT FROM candle_empty_ranges AS e
    WHERE e.exchange = $1 AND e.symbol = $2 AND e.timeframe = $3
      AND e.range_start <= to_timestamp(holes.hole_start * 60.0) AND e.range_end >= to_timestamp(holes.hole_end * 60.0)
      AND e.confirmed_at > $6
)
ORDER BY hole_start
LIMIT $5
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
# Per timeframe of one market: rejected candles that no good candle has replaced since (one whose
# open time is not a whole minute never is).
COUNT_REJECTED = """
SELECT r.timeframe, count(*) AS rejected
FROM candle_rejections AS r JOIN candle_series AS s USING (exchange, symbol, timeframe)
WHERE r.exchange = $1 AND r.symbol = $2 AND NOT (
    r.open_time = date_trunc('minute', r.open_time)
    AND candle_is_stored(s.id, candle_minute(r.open_time AT TIME ZONE 'UTC'))
)
GROUP BY r.timeframe
"""
SERIES_ID = "SELECT id FROM candle_series WHERE exchange = $1 AND symbol = $2 AND timeframe = $3"
# At least how many candles of a segment open from minute $2 on and before minute $3, without
# decoding it: a candle is at most one per grid slot, $6 minutes apart at least (the shortest step).
SEGMENT_HOLDS_AT_LEAST = """greatest(
    candles
    - CASE WHEN first_minute < $2 THEN ($2::int8 - first_minute + $6 - 1) / $6 ELSE 0 END
    - CASE WHEN last_minute >= $3 THEN (last_minute::int8 - $3) / $6 + 1 ELSE 0 END,
    0)"""
# The first $4 candles of series $1 from minute $2 on, before minute $3 (open time in ms, as the
# API answers it): the segments that may hold some of them (from the one holding minute $2, which
# begins at $5, on; only as many as the first $4 candles can need: a day read from its first minute
# is one segment), one row each, and the rows up to where those segments alone hold $4 candles.
READ_FROM_START = f"""
WITH segments AS (
    SELECT first_minute, last_minute, runs, body, raw_positions, raw_values, held,
           sum(held) OVER (ORDER BY segment_start) AS held_through
    FROM (
        SELECT *, {SEGMENT_HOLDS_AT_LEAST} AS held FROM candle_segments
        WHERE series_id = $1 AND segment_start >= $5 AND segment_start < $3 AND last_minute >= $2
    ) AS overlapping
), needed AS MATERIALIZED (
    SELECT * FROM segments WHERE held_through - held < $4
)
(SELECT open_minute::int8 * 60000 AS open_ms, open, high, low, close, volume,
        NULL::integer[] AS runs, NULL::bytea AS body, NULL::integer[] AS raw_positions, NULL::float8[] AS raw_values
 FROM candle_data
 WHERE series_id = $1 AND open_minute >= $2 AND open_minute < $3
   AND open_minute <= coalesce((SELECT last_minute FROM needed WHERE held_through >= $4), $3)
 ORDER BY open_minute LIMIT $4)
UNION ALL
SELECT first_minute::int8 * 60000, NULL, NULL, NULL, NULL, NULL, runs, body, raw_positions, raw_values FROM needed
"""
# The newest $4 candles of series $1 before minute $3 (from minute $2 on, in a segment beginning at
# $5 or later): the rows, and the segments that may hold some of them (when the rows alone hold $4
# candles, only those reaching past the oldest of them, which begin at most $7 minutes earlier;
# only as many as the newest $4 candles can need).
READ_NEWEST = f"""
WITH recent AS MATERIALIZED (
    SELECT open_minute, open, high, low, close, volume FROM candle_data
    WHERE series_id = $1 AND open_minute >= $2 AND open_minute < $3
    ORDER BY open_minute DESC LIMIT $4
), oldest AS (
    SELECT CASE WHEN count(*) = $4 THEN min(open_minute) END AS minute FROM recent
), segments AS (
    SELECT first_minute, runs, body, raw_positions, raw_values, held,
           sum(held) OVER (ORDER BY segment_start DESC) AS held_through
    FROM (
        SELECT *, {SEGMENT_HOLDS_AT_LEAST} AS held FROM candle_segments
        WHERE series_id = $1 AND segment_start >= greatest($5, coalesce((SELECT minute FROM oldest) - $7, $5))
          AND first_minute < $3 AND last_minute >= greatest($2, coalesce((SELECT minute FROM oldest), $2))
    ) AS overlapping
)
SELECT open_minute::int8 * 60000 AS open_ms, open, high, low, close, volume,
       NULL::integer[] AS runs, NULL::bytea AS body, NULL::integer[] AS raw_positions, NULL::float8[] AS raw_values
FROM recent
UNION ALL
SELECT first_minute::int8 * 60000, NULL, NULL, NULL, NULL, NULL, runs, body, raw_positions, raw_values
FROM segments WHERE held_through - held < $4
"""
COUNT_REVISED = "UPDATE candle_series SET revised_candles = revised_candles + $2 WHERE id = $1"
# Per series of one market with candles: count, first and last from the summary, its gaps, the
# candles the exchange revised, and the most days of history a config of the market asks of its
# timeframe (null: none asks for it).
COVERAGE = """
SELECT s.id AS series_id, s.timeframe, c.candles, c.first_minute, c.last_minute, s.revised_candles,
       (SELECT max(k.backfill_days) FROM data_collection_configs AS k
        WHERE k.exchange = $1 AND k.symbol = $2 AND s.timeframe = ANY(k.timeframes)) AS backfill_days,
       (SELECT count(*) FROM candle_gaps AS g WHERE g.series_id = s.id) AS gap_count,
       ARRAY(
           SELECT ARRAY[g.after_minute, g.next_minute] FROM candle_gaps AS g WHERE g.series_id = s.id
           ORDER BY g.next_minute - g.after_minute DESC, g.after_minute LIMIT $3
       ) AS largest_gaps
FROM candle_series AS s
CROSS JOIN LATERAL (
    SELECT sum(candles)::bigint AS candles, min(first_minute) AS first_minute, max(last_minute) AS last_minute
    FROM candle_counts WHERE series_id = s.id
) AS c
WHERE s.exchange = $1 AND s.symbol = $2 AND c.candles IS NOT NULL
ORDER BY s.timeframe
"""
# The gaps of a series that begin before minute $2, oldest first.
GAPS_BEFORE = """
SELECT after_minute, next_minute FROM candle_gaps WHERE series_id = $1 AND after_minute < $2 ORDER BY after_minute
"""

CandleRow = tuple[datetime, float, float, float, float, float]
"""A candle as the collector hands it over: open time (a whole minute), open, high, low, close, volume."""
MINUTE_MS = 60_000
FIRST_MINUTE = -(2**31)
END_MINUTE = 2**31 - 1


class StoredSeries(msgspec.Struct, kw_only=True, frozen=True):
    """One series' id and what is known of it."""

    id: int
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None  # the oldest stored candle
    newest: datetime | None  # the newest stored candle
    newest_gap_end: datetime | None  # the stored candle that ends the newest gap (None: no gap)
    earliest_available: datetime | None  # the exchange said it has nothing before this...
    earliest_asked_from: datetime | None  # ...when asked for candles from this time on
    rejected_open_times: frozenset[datetime] = frozenset()  # candles the exchange sent broken before


class CandleQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Candles of one series: the first ``limit`` from ``start`` on, else the newest before ``end``."""

    exchange: str
    symbol: str
    timeframe: str
    start: datetime | None
    end: datetime | None
    limit: int


class Hole(msgspec.Struct, frozen=True):
    start: datetime  # first missing open time
    end: datetime  # open time of the next stored candle


class EmptyRange(msgspec.Struct, frozen=True):
    timeframe: str
    start: datetime
    end: datetime  # excluded


class Merged(msgspec.Struct, frozen=True):
    """What a merge did, and the summary as it was before it around the page."""

    inserted: list[int]  # open minutes not stored before, ascending
    written: list[int]  # open minutes inserted or changed, ascending
    first: int | None  # the series' first and last stored minute
    last: int | None
    gaps: list[tuple[int, int]]  # (after, next) overlapping the page's minutes, ascending

    @property
    def revised(self) -> int:
        """Stored candles the page changed."""
        return len(self.written) - len(self.inserted)

    def part(self, low: int, high: int) -> tuple[int, int]:
        """Of the candles with open minutes from ``low`` to ``high``: how many were inserted or
        changed, and of those, how many were stored candles the page changed."""
        written = bisect.bisect_right(self.written, high) - bisect.bisect_left(self.written, low)
        inserted = bisect.bisect_right(self.inserted, high) - bisect.bisect_left(self.inserted, low)
        return written, written - inserted

    def gaps_around(self, first: int, last: int) -> list[tuple[int, int]]:
        """The gaps overlapping minutes ``first`` to ``last`` (inside the page)."""
        return [(after, following) for after, following in self.gaps if following > first and after < last]


async def open_series(db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str) -> StoredSeries:
    """The series, created when it is new."""
    row = await db.fetchrow(SERIES, exchange, symbol, timeframe)
    if row is None:
        await db.execute(CREATE_SERIES, exchange, symbol, timeframe)
        row = await db.fetchrow(SERIES, exchange, symbol, timeframe)
        assert row is not None
    return _stored_series(row, exchange=exchange, symbol=symbol)


BegunRun = tuple[RunConfig, dict[str, StoredSeries]] | Literal["not running", "no config"]


async def begin_runs_reading_series(db: Pool | Connection, run_ids: list[int]) -> list[BegunRun]:
    """Begin the queued runs as :func:`backend.runs.repository.begin_run` does, and read their
    configs' series already stored, by timeframe (those missing are created by :func:`open_series`);
    one answer per run, in order."""
    rows_by_run: dict[int, list[asyncpg.Record]] = {}
    for row in await db.fetch(BEGIN_RUNS_READING_SERIES, run_ids):
        rows_by_run.setdefault(row["begun_run_id"], []).append(row)
    return [_begun_run(rows_by_run.get(run_id, [])) for run_id in run_ids]


def _begun_run(rows: list[asyncpg.Record]) -> BegunRun:
    config = runs.config_of_begun_run(rows[0] if rows else None)
    if isinstance(config, str):
        return config
    stored = [row for row in rows if row["series_id"] is not None]
    return config, {
        row["timeframe"]: _stored_series(row, exchange=config.exchange, symbol=config.symbol) for row in stored
    }


def _stored_series(row: Any, *, exchange: str, symbol: str) -> StoredSeries:
    return StoredSeries(
        id=row["series_id"],
        exchange=exchange,
        symbol=symbol,
        timeframe=row["timeframe"],
        first=_moment(row["first"]),
        newest=_moment(row["newest"]),
        newest_gap_end=_moment(row["newest_gap_end"]),
        earliest_available=row["earliest_available"],
        earliest_asked_from=row["earliest_asked_from"],
        rejected_open_times=frozenset(row["rejected_open_times"]),
    )


def _moment(minute: int | None) -> datetime | None:
    return from_minute(minute) if minute is not None else None


async def set_earliest_available(
    db: Pool | Connection, *, exchange: str, symbol: str, timeframe: str, earliest: datetime, asked_from: datetime
) -> None:
    """Asked for candles from ``asked_from`` on, the exchange's first one opened at ``earliest``."""
    await db.execute(SET_EARLIEST_AVAILABLE, exchange, symbol, timeframe, earliest, asked_from)


async def create_partitions(db: Pool | Connection, *, timeframe: str, first: int, last: int) -> list[Period]:
    """The partitions holding minutes ``first``..``last``, created when missing (in a transaction of their own)."""
    rows = await db.fetch(CREATE_PARTITIONS, timeframe, first, last)
    return [Period(row["period_start"], row["period_end"], row["partition_name"]) for row in rows]


async def count_revised(conn: Connection, *, series_id: int, revised: int) -> None:
    """Inside the writing transaction that changed them: ``revised`` stored candles of the series were revised."""
    await conn.execute(COUNT_REVISED, series_id, revised)


async def lock_series(conn: Connection, *, series_id: int) -> None:
    """Inside a writing transaction: wait for other writers of the series."""
    await conn.execute(LOCK_SERIES, series_id)


async def newest_minute(conn: Connection, *, series_id: int) -> int | None:
    """The newest stored minute of the series, as its writer sees it once it holds the lock."""
    newest: int | None = await conn.fetchval(NEWEST, series_id)
    return newest


async def copy_candles(
    conn: Connection, *, series_id: int, minutes: Sequence[int], rows: Sequence[CandleRow], periods: Sequence[Period]
) -> None:
    """Append candles none of which can be stored already (COPY: no staging, no conflict check).

    ``minutes`` are the rows' open times as stored minutes (ascending), all inside ``periods``
    (ascending): each period's candles are copied straight into its partition, not routed through
    ``candle_data``.
    """
    start = 0
    for period in periods:
        end = bisect.bisect_left(minutes, period.end, start)
        if end > start:
            records = ((series_id, minutes[i], *rows[i][1:]) for i in range(start, end))
            await conn.copy_records_to_table(period.table, records=records, columns=CANDLE_COLUMNS)
        start = end
    if start != len(minutes):
        raise ValueError("periods do not cover every candle")


async def merge_candles(
    conn: Connection, *, series_id: int, minutes: Sequence[int], rows: Sequence[CandleRow]
) -> Merged:
    """Insert or update candles some of which may be stored (rows must not repeat an open time)."""
    columns = list(zip(*rows, strict=True))
    row = await conn.fetchrow(MERGE, series_id, minutes, *columns[1:])
    assert row is not None
    return Merged(
        inserted=list(row["inserted"]),
        written=list(row["written"]),
        first=row["first"],
        last=row["last"],
        gaps=[(after, following) for after, following in row["gaps"]],
    )


async def apply_summary(conn: Connection, *, series_id: int, change: SummaryChange) -> None:
    counts = change.counts
    await conn.execute(
        APPLY_SUMMARY,
        series_id,
        [c.start for c in counts],
        [c.candles for c in counts],
        [c.first for c in counts],
        [c.last for c in counts],
        change.removed_gaps,
        [after for after, _ in change.gaps],
        [following for _, following in change.gaps],
    )


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
    rows = await db.fetch(FIND_HOLES, exchange, symbol, timeframe, to_minute(since), limit, confirmed_after)
    return [Hole(start=from_minute(row["hole_start"]), end=from_minute(row["hole_end"])) for row in rows]


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


async def count_rejected(db: Pool | Connection, *, exchange: str, symbol: str) -> dict[str, int]:
    """Per timeframe of one market: candles rejected and not replaced by a good one since."""
    rows = await db.fetch(COUNT_REJECTED, exchange, symbol)
    return {row["timeframe"]: row["rejected"] for row in rows}


def _minute_at_or_after(moment: datetime | None, default: int) -> int:
    """The first stored minute at or after ``moment`` (candles open on whole minutes), within int4."""
    if moment is None:
        return default
    return max(FIRST_MINUTE, min(END_MINUTE, -((EPOCH - moment) // MINUTE)))


def _bounds(query: CandleQuery) -> tuple[int, int]:
    """Open minutes from ``start`` on and before ``end``: ``start <= open_minute < end``."""
    return _minute_at_or_after(query.start, FIRST_MINUTE), _minute_at_or_after(query.end, END_MINUTE)


async def read_candles(pool: Pool, query: CandleQuery) -> list[schemas.CandleRow]:
    """The candles ``query`` asks for, oldest first: (open time in ms, open, high, low, close, volume)."""
    async with pool.acquire() as conn:  # one connection for both statements
        series_id = await conn.fetchval(SERIES_ID, query.exchange, query.symbol, query.timeframe)
        if series_id is None:
            return []
        start, end = _bounds(query)
        lowest = start if start == FIRST_MINUTE else segment_start(start, query.timeframe)
        step = STEP_MINUTES.get(query.timeframe, SHORTEST_MONTH_MINUTES)
        if query.start is not None:
            records = await conn.fetch(READ_FROM_START, series_id, start, end, query.limit, lowest, step)
        else:
            span = segment_span_minutes(query.timeframe)
            records = await conn.fetch(READ_NEWEST, series_id, start, end, query.limit, lowest, step, span)
    rows = sorted((record[:6] for record in records if record["body"] is None), key=itemgetter(0))
    segments = sorted((record for record in records if record["body"] is not None), key=itemgetter(0))
    if not segments:
        return rows
    compacted = _from_segments(segments, query.timeframe, start, end, query.limit, newest=query.start is None)
    if not rows:
        return compacted
    # the first (newest) ``limit`` of both are among the first (newest) ``limit`` of each
    replaced = {row[0] for row in rows}  # a row replaces the segment's candle of its minute
    candles = sorted([*rows, *(c for c in compacted if c[0] not in replaced)], key=itemgetter(0))
    return candles[: query.limit] if query.start is not None else candles[-query.limit :]


def _from_segments(
    segments: list[Any], timeframe: str, start: int, end: int, limit: int | None, *, newest: bool
) -> list[schemas.CandleRow]:
    """The candles of ``segments`` (ascending) from minute ``start`` up to ``end``, ascending: the
    first ``limit`` of them, or the last when ``newest`` (all when ``limit`` is None)."""
    candles: list[schemas.CandleRow] = []
    for segment in reversed(segments) if newest else segments:
        left = None if limit is None else limit - len(candles)
        if left == 0:
            break
        minutes = open_minutes(timeframe, segment["open_ms"] // MINUTE_MS, segment["runs"])
        low, high = bisect.bisect_left(minutes, start), bisect.bisect_left(minutes, end)
        if left is not None:
            low, high = (max(low, high - left), high) if newest else (low, min(high, low + left))
        part = decode_values(
            segment["body"],
            len(minutes),
            segment["raw_positions"],
            segment["raw_values"],
            first=low,
            stop=high,
            open_times=map(mul, minutes[low:high], repeat(MINUTE_MS)),
        )
        candles = part + candles if newest else candles + part
    return candles


async def coverage(db: Pool | Connection, *, exchange: str, symbol: str, largest_gaps: int) -> list[Any]:
    return await db.fetch(COVERAGE, exchange, symbol, largest_gaps)


async def gaps_before(db: Pool | Connection, *, series_id: int, minute: int) -> list[tuple[int, int]]:
    """The gaps ``(after, next)`` of a series that begin before ``minute`` (stored minutes)."""
    return [(row["after_minute"], row["next_minute"]) for row in await db.fetch(GAPS_BEFORE, series_id, minute)]
