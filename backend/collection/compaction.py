"""Compacting closed periods: the candles of each series become one segment per day (month, year).

Once a time partition of ``candle_data`` has been closed for ``COMPACT_AFTER`` (the collector
re-reads its newest candles for revisions, so they stay rows a while), the daily upkeep encodes its
candles into ``candle_segments`` (:mod:`backend.collection.segments`), series by series, each in a
transaction holding the series lock that writers take, and then empties the partition. Candles
written into a compacted period later (older history, repaired holes, revisions) land in the
partition as rows, replace the segment's candle of the same minute on every read, and are folded
into the segments by the next upkeep. The coverage summary does not change: the same candles are
stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg

from backend.collection import repository
from backend.collection.segments import (
    Candle,
    OffTheGrid,
    Segment,
    decode_segment,
    encode_segment,
    split_by_segment,
)
from backend.collection.timeframes import to_minute
from backend.db.pool import Connection, Pool

logger = logging.getLogger(__name__)

COMPACT_AFTER = timedelta(days=3)
HEARTBEAT_EVERY_SERIES = 100
SERIES_AT_ONCE = 2
ROWS_AT_ONCE = 2000
# how long emptying a compacted partition may wait for the writers and readers in it
EMPTY_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"

# The partitions whose period ended at or before minute $1, oldest first, with the statements run on
# each (partition names come from the catalog).
CLOSED_PARTITIONS = """
SELECT partition_name, timeframe, period_start, period_end, pg_relation_size(partition_name::regclass) AS bytes,
       format('SELECT EXISTS (SELECT FROM %I)', partition_name) AS has_rows,
       format('DELETE FROM %I WHERE series_id = $1 AND open_minute <> ALL($2::integer[])', partition_name)
           AS delete_rows,
       format('LOCK TABLE %I IN EXCLUSIVE MODE', partition_name) AS keep_writers_out,
       format('TRUNCATE %I', partition_name) AS empty
FROM candle_partitions WHERE period_end <= $1 AND NOT detach_pending
ORDER BY period_start, timeframe
"""
CREATE_SEGMENT_PARTITION = "SELECT create_candle_segment_partition($1)"
# The series with candles in the period beginning at $2 of timeframe $1 (from the summary).
SERIES_IN_PERIOD = """
SELECT c.series_id FROM candle_counts AS c JOIN candle_timeframes() AS t ON c.series_id / 100000000 = t.series_block
WHERE t.timeframe = $1 AND c.period_start = $2
ORDER BY c.series_id
"""
ROWS_IN_PERIOD = """
SELECT open_minute, open, high, low, close, volume FROM candle_data
WHERE series_id = $1 AND open_minute >= $2 AND open_minute < $3
ORDER BY open_minute
"""
SEGMENTS_AT = """
SELECT segment_start, first_minute, runs, body, raw_positions, raw_values FROM candle_segments
WHERE series_id = $1 AND segment_start = ANY($2::integer[])
"""
DELETE_SEGMENTS_AT = "DELETE FROM candle_segments WHERE series_id = $1 AND segment_start = ANY($2::integer[])"
SEGMENT_COLUMNS = (
    "series_id",
    "segment_start",
    "first_minute",
    "last_minute",
    "candles",
    "runs",
    "body",
    "raw_positions",
    "raw_values",
)


async def compact_closed_partitions(
    pool: Pool,
    *,
    now: datetime,
    after: timedelta = COMPACT_AFTER,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    """Compact every partition closed ``after`` ago or more that holds rows, and empty it; the names of
    those emptied."""
    emptied: list[str] = []
    for partition in await closed_partitions(pool, before=now - after):
        if partition["bytes"] == 0:
            continue  # never written, or emptied already
        if await pool.fetchval(partition["has_rows"]):
            done = await compact_partition(pool, partition, heartbeat=heartbeat)
        else:
            done = await _empty(pool, partition)  # compacted before, but busy when it was to be emptied
        if done:
            emptied.append(partition["partition_name"])
        if heartbeat is not None:
            await heartbeat()
    if emptied:
        logger.info("candle partitions compacted: %s", emptied)
    return emptied


async def closed_partitions(pool: Pool, *, before: datetime) -> list[Any]:
    """The partitions whose period ended at or before ``before``, oldest first (``CLOSED_PARTITIONS``)."""
    return await pool.fetch(CLOSED_PARTITIONS, to_minute(before))


async def compact_partition(
    pool: Pool, partition: Any, *, heartbeat: Callable[[], Awaitable[None]] | None = None
) -> bool:
    """Fold the rows of one partition (a row of ``CLOSED_PARTITIONS``) into segments, series by series
    (two at a time: one is encoded while the other's rows are read or deleted), then empty it;
    whether it was emptied."""
    segment_table: str = await pool.fetchval(CREATE_SEGMENT_PARTITION, partition["partition_name"])
    series = iter(await pool.fetch(SERIES_IN_PERIOD, partition["timeframe"], partition["period_start"]))
    done = 0

    async def compact_series_in_turn() -> None:
        nonlocal done
        for row in series:
            await _compact_series(pool, partition, segment_table, row["series_id"])
            done += 1
            if heartbeat is not None and done % HEARTBEAT_EVERY_SERIES == 0:
                await heartbeat()

    try:
        async with asyncio.TaskGroup() as group:  # one failing stops the other
            for _ in range(SERIES_AT_ONCE):
                group.create_task(compact_series_in_turn())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from failed  # what went wrong, as the daily job's run log names it
    return await _empty(pool, partition)


async def _compact_series(pool: Pool, partition: Any, segment_table: str, series_id: int) -> None:
    timeframe: str = partition["timeframe"]
    async with pool.acquire() as proxy, proxy.transaction():
        conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
        await repository.lock_series(conn, series_id=series_id)
        # read in batches, so that the process serving requests never stops for a whole month of rows
        period = (series_id, partition["period_start"], partition["period_end"])
        rows = [cast(Candle, tuple(row)) async for row in conn.cursor(ROWS_IN_PERIOD, *period, prefetch=ROWS_AT_ONCE)]
        if not rows:
            return
        groups = split_by_segment(rows, timeframe)
        existing = await conn.fetch(SEGMENTS_AT, series_id, list(groups))
        segments, kept = await asyncio.to_thread(_fold, timeframe, groups, existing)
        replaced = [row["segment_start"] for row in existing if row["segment_start"] not in kept]
        if replaced:
            await conn.execute(DELETE_SEGMENTS_AT, series_id, replaced)
        await conn.copy_records_to_table(
            segment_table,
            records=[
                (
                    series_id,
                    segment.start,
                    segment.first_minute,
                    segment.last_minute,
                    segment.candles,
                    segment.runs,
                    segment.body,
                    segment.raw_positions,
                    segment.raw_values,
                )
                for segment in segments
            ],
            columns=SEGMENT_COLUMNS,
        )
        kept_minutes = [candle[0] for start in kept for candle in groups[start]]
        await conn.execute(partition["delete_rows"], series_id, kept_minutes)
    if kept:
        logger.warning(
            "%s: series %s has candles off the timeframe's grid: %d days kept as rows",
            partition["partition_name"],
            series_id,
            len(kept),
        )


def _fold(timeframe: str, groups: dict[int, list[Candle]], existing: Sequence[Any]) -> tuple[list[Segment], set[int]]:
    """The segments of ``groups`` (rows per segment start), each with the candles of the segment
    already stored there that no row replaces; and the starts whose rows stay rows (off the grid)."""
    stored = {row["segment_start"]: row for row in existing}
    segments = []
    kept: set[int] = set()
    for start, rows in groups.items():
        candles = rows
        if start in stored:
            old = stored[start]
            minutes, values = decode_segment(
                timeframe, old["first_minute"], old["runs"], old["body"], old["raw_positions"], old["raw_values"]
            )
            by_minute = {minute: (minute, *value) for minute, value in zip(minutes, values, strict=True)}
            by_minute.update((row[0], row) for row in rows)
            candles = [by_minute[minute] for minute in sorted(by_minute)]
        try:
            segments.append(encode_segment(start, candles, timeframe))
        except OffTheGrid:
            kept.add(start)
    return segments, kept


async def _empty(pool: Pool, partition: Any) -> bool:
    """Truncate the partition when no row is left in it (writers kept out meanwhile); whether it was."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(EMPTY_LOCK_TIMEOUT)
            await conn.execute(partition["keep_writers_out"])
            if await conn.fetchval(partition["has_rows"]):
                return False  # written meanwhile: the next upkeep folds them in
            await conn.execute(partition["empty"])
    except asyncpg.LockNotAvailableError:
        logger.info("%s: busy, emptied at the next upkeep", partition["partition_name"])
        return False
    return True
