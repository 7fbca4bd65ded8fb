"""The daily upkeep of candle partitions: create the coming periods ahead, drop the expired ones.

Every timeframe that has a series gets its current and next partition before candles arrive
there, so collecting never waits on DDL. With a retention of N days for a timeframe
(``CANDLE_RETENTION_DAYS_1M`` ...), each of its partitions that ends more than N days ago is
detached concurrently (readers and writers never wait) and dropped, oldest first, with the
partition of its period's compacted segments, and its share of the coverage summary goes with
it. Rows are never deleted one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import msgspec

from backend.collection import repository
from backend.collection.timeframes import to_minute
from backend.db.pool import Pool

logger = logging.getLogger(__name__)

AHEAD = timedelta(days=31)  # a month ahead: the next monthly partition always exists

TIMEFRAMES_IN_USE = "SELECT DISTINCT timeframe FROM candle_series ORDER BY timeframe"
EXISTING_PARTITIONS = "SELECT partition_name FROM candle_partitions WHERE timeframe = $1"
# the partitions of timeframe $1 whose period ended at or before minute $2, oldest first, candles'
# before their period's segments
EXPIRED_PARTITIONS = """
SELECT partition_name, period_start, period_end, detach_pending,
       format('ALTER TABLE %I DETACH PARTITION %I', parent_name, partition_name) AS detach,
       format('DROP TABLE %I', partition_name) AS drop_table
FROM (
    SELECT *, 0 AS kind FROM candle_partitions WHERE timeframe = $1 AND period_end <= $2
    UNION ALL
    SELECT *, 1 FROM candle_segment_partitions WHERE timeframe = $1 AND period_end <= $2
) AS expired
ORDER BY period_start, kind
"""
# the summary of the candles of a dropped partition: its period's counts, and the gaps that began
# in it (their later end is now the series' first candle)
FORGET_SUMMARY = """
WITH series AS (
    SELECT series_block * 100000000 AS low, (series_block + 1) * 100000000 AS high
    FROM candle_timeframes() WHERE timeframe = $1
), counts AS (
    DELETE FROM candle_counts AS c USING series
    WHERE c.series_id >= series.low AND c.series_id < series.high AND c.period_start = $2
)
DELETE FROM candle_gaps AS g USING series
WHERE g.series_id >= series.low AND g.series_id < series.high AND g.after_minute >= $2 AND g.after_minute < $3
"""


class PartitionUpkeep(msgspec.Struct, kw_only=True):
    created: list[str]
    dropped: list[str]


async def keep_partitions(pool: Pool, *, retention_days: Mapping[str, int], now: datetime) -> PartitionUpkeep:
    """Create the partitions due within ``AHEAD``; drop those past their timeframe's retention."""
    upkeep = PartitionUpkeep(created=[], dropped=[])
    for row in await pool.fetch(TIMEFRAMES_IN_USE):
        timeframe: str = row["timeframe"]
        existing = {r["partition_name"] for r in await pool.fetch(EXISTING_PARTITIONS, timeframe)}
        periods = await repository.create_partitions(
            pool, timeframe=timeframe, first=to_minute(now), last=to_minute(now + AHEAD)
        )
        names = [period.table for period in periods]
        upkeep.created += [name for name in names if name not in existing]
    for timeframe, days in sorted(retention_days.items()):
        upkeep.dropped += await drop_expired_partitions(pool, timeframe=timeframe, before=now - timedelta(days=days))
    if upkeep.created or upkeep.dropped:
        logger.info("candle partitions: created %s, dropped %s", upkeep.created or "none", upkeep.dropped or "none")
    return upkeep


async def drop_expired_partitions(pool: Pool, *, timeframe: str, before: datetime) -> list[str]:
    """Drop the partitions of ``timeframe`` that end at or before ``before``, oldest first; their names."""
    dropped: list[str] = []
    for partition in await pool.fetch(EXPIRED_PARTITIONS, timeframe, to_minute(before)):
        name: str = partition["partition_name"]
        # CONCURRENTLY runs outside a transaction; FINALIZE completes one that was interrupted
        suffix = " FINALIZE" if partition["detach_pending"] else " CONCURRENTLY"
        await pool.execute(partition["detach"] + suffix)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(partition["drop_table"])
            await conn.execute(FORGET_SUMMARY, timeframe, partition["period_start"], partition["period_end"])
        dropped.append(name)
    return dropped
