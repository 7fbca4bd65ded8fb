"""Run history that stays small: routine runs older than a day are compacted, expired days dropped.

A routine run is a scheduled collection that succeeded with nothing to tell: no error, no retry,
no repaired hole, no missed slot. It keeps its full row in ``job_execution_logs`` for
:data:`DETAIL_HOURS`; then :func:`compact_routine_runs` moves it into ``compacted_runs`` (one row
per config and hour, a few bytes per run: the minute it started, its lateness, duration and
candles; ``compacted_run_values`` in SQL gives them back), which is what the stats, the charts and
the per-config figures read of it. Every other run (failed, partial, manual, a system job) keeps
its full row until ``LOG_RETENTION_DAYS``.
Moving a run changes no figure: the per-minute counts stay as they are, and the readers take the
compacted runs with the logs.

So that the latest runs stay readable whatever their age, the newest success of each config (the
consecutive-failure counts stop at it) and the ten newest runs (``/status``) are never moved.

``compacted_runs`` has one partition per UTC day; :func:`drop_expired_days` drops the days that
ended more than ``LOG_RETENTION_DAYS`` ago, with their share of the per-minute counts.
:func:`keep_history` does both, every hour (``backend.scheduling.retention``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import cast

import msgspec

from backend.db.pool import Connection, Pool

DETAIL_HOURS = 24  # every run of the last day keeps its full row
NEWEST_RUNS_KEPT = 10  # /status shows the last 10 runs

OLDEST_SUCCESS = """
SELECT min(started_at) FROM job_execution_logs WHERE status = 'success' AND started_at >= $1 AND started_at < $2
"""
CREATE_PARTITION = "SELECT create_compacted_runs_partition($1::date)"
# The per-minute counts keep counting the moved runs (see the migration).
MOVING_RUNS = "SELECT set_config('altar.moving_runs', 'on', true)"
# One writer of compacted_runs at a time.
LOCK_HISTORY = "SELECT pg_advisory_xact_lock(hashtext('compacted_runs'))"
# The configs of the runs in [$1, $2) first, as every writer of logs does (see backend.runs.repository):
# deleting a config waits for the move instead of deadlocking with it.
LOCK_CONFIGS = """
SELECT FROM data_collection_configs
WHERE id IN (SELECT config_id FROM job_execution_logs WHERE started_at >= $1 AND started_at < $2)
ORDER BY id
FOR KEY SHARE
"""
# Routine runs that started in [$1, $2) (within one UTC hour) leave the logs for compacted_runs.
# A value the compact row cannot hold exactly keeps its run a full row.
COMPACT_ROUTINE_RUNS = f"""
WITH newest AS (
    SELECT id FROM job_execution_logs ORDER BY started_at DESC, id DESC LIMIT {NEWEST_RUNS_KEPT}
), moved AS (
    DELETE FROM job_execution_logs AS log
    WHERE log.started_at >= $1 AND log.started_at < $2
      AND log.status = 'success' AND log.job_type = 'data_collection' AND log.trigger = 'schedule'
      AND log.missed_slots = 0 AND log.error_type IS NULL AND log.error_message IS NULL
      AND log.scheduled_for IS NOT NULL
      AND abs(extract(epoch FROM log.started_at - log.scheduled_for)) < 2000
      AND log.duration_seconds <= 32.767 AND round(log.duration_seconds::numeric, 3)::float8 = log.duration_seconds
      AND coalesce(log.records_collected, 0) <= 32767
      AND run_candles(log.metadata, 'holes_repaired') = 0 AND run_candles(log.metadata, 'retries') = 0
      AND log.id NOT IN (SELECT id FROM newest)
      AND EXISTS (
          SELECT FROM job_execution_logs AS newer
          WHERE newer.config_id = log.config_id AND newer.started_at > log.started_at AND newer.status = 'success'
      )
    RETURNING log.config_id, log.started_at, log.scheduled_for, log.duration_seconds, log.records_collected
), placed AS (
    SELECT config_id, started_at,
           date_bin('1 hour', started_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS hour,
           (extract(epoch FROM started_at - scheduled_for) * 1000000)::integer AS lateness_us,
           round(duration_seconds::numeric * 1000)::smallint AS duration_ms,
           coalesce(records_collected, 0)::smallint AS records
    FROM moved
), minuted AS (
    SELECT *, floor(extract(epoch FROM started_at - hour) / 60)::smallint AS minute FROM placed
), grouped AS (
    SELECT hour, config_id,
           array_agg(lateness_us ORDER BY started_at) AS lateness_us,
           array_agg(duration_ms ORDER BY started_at) AS duration_ms,
           array_agg(minute ORDER BY started_at) AS minutes,
           array_agg(records ORDER BY started_at) AS records,
           min(minute) AS first_minute, max(minute) AS last_minute, count(DISTINCT minute) AS distinct_minutes,
           min(records) AS fewest, max(records) AS most, count(*) AS runs
    FROM minuted
    GROUP BY hour, config_id
)
INSERT INTO compacted_runs (hour, config_id, lateness_us, duration_ms, first_minute, minutes, records_each, records)
SELECT hour, config_id, lateness_us, duration_ms, first_minute,
       CASE WHEN distinct_minutes < runs OR last_minute - first_minute + 1 <> runs THEN minutes END,
       CASE WHEN fewest = most THEN fewest END,
       CASE WHEN fewest <> most THEN records END
FROM grouped
RETURNING cardinality(lateness_us) AS runs
"""

EXPIRED_DAYS = "SELECT partition_name, day FROM compacted_run_partitions WHERE day < $1::date ORDER BY day"
# The day's compacted runs leave the per-minute counts (as deleting logs does).
FORGET_DAY_COUNTS = """
WITH gone AS (
    SELECT started_minute AS minute, count(*) AS runs, sum(duration_seconds) AS duration_seconds,
           sum(records_collected) AS records
    FROM compacted_run_values($1::timestamptz, $1::timestamptz + interval '1 day')
    GROUP BY 1
)
UPDATE job_execution_minutes AS m
SET runs = m.runs - gone.runs, timed_runs = m.timed_runs - gone.runs,
    duration_seconds = m.duration_seconds - gone.duration_seconds,
    records_collected = m.records_collected - gone.records
FROM gone
WHERE (m.minute, m.job_type, m.status) = (gone.minute, 'data_collection', 'success')
"""
FORGET_EMPTY_MINUTES = """
DELETE FROM job_execution_minutes
WHERE minute >= $1 AND minute < $1 + interval '1 day' AND job_type = 'data_collection' AND status = 'success'
  AND runs = 0
"""
DROP_PARTITION = "SELECT format('DROP TABLE %I', $1::text)"
# what the polled answers show changed (their tags are made of the logs' data version)
BUMP_DATA_VERSION = "SELECT bump_data_version('job_execution_logs')"


class HistoryUpkeep(msgspec.Struct, kw_only=True):
    """What one pass did: runs moved into ``compacted_runs``, and the days dropped."""

    compacted_runs: int
    dropped_partitions: list[str]


def _utc_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def compact_routine_runs(
    pool: Pool,
    *,
    before: datetime,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Move every routine run that started before ``before`` into ``compacted_runs``, one UTC hour
    per transaction, oldest first; how many moved."""
    moved = 0
    since = datetime.min.replace(tzinfo=UTC)
    while True:
        oldest: datetime | None = await pool.fetchval(OLDEST_SUCCESS, since, before)
        if oldest is None:
            return moved
        since = min(_utc_hour(oldest) + timedelta(hours=1), before)
        async with pool.acquire() as proxy, proxy.transaction():
            conn = cast(Connection, proxy)
            await conn.execute(LOCK_HISTORY)
            await conn.execute(CREATE_PARTITION, oldest.astimezone(UTC).date())
            await conn.execute(LOCK_CONFIGS, oldest, since)
            await conn.execute(MOVING_RUNS)
            rows = await conn.fetch(COMPACT_ROUTINE_RUNS, oldest, since)
        moved += sum(row["runs"] for row in rows)
        if heartbeat is not None:
            await heartbeat()


async def drop_expired_days(pool: Pool, *, before: date) -> list[str]:
    """Drop the partitions of ``compacted_runs`` of the days before ``before``, oldest first, each
    with its runs' share of the per-minute counts; their names."""
    dropped = []
    for partition in await pool.fetch(EXPIRED_DAYS, before):
        day_start = datetime(partition["day"].year, partition["day"].month, partition["day"].day, tzinfo=UTC)
        async with pool.acquire() as proxy, proxy.transaction():
            conn = cast(Connection, proxy)
            await conn.execute(LOCK_HISTORY)
            await conn.execute(FORGET_DAY_COUNTS, day_start)
            await conn.execute(FORGET_EMPTY_MINUTES, day_start)
            await conn.execute(await conn.fetchval(DROP_PARTITION, partition["partition_name"]))
            await conn.execute(BUMP_DATA_VERSION)
        dropped.append(partition["partition_name"])
    return dropped


async def keep_history(
    pool: Pool, *, now: datetime, retention_days: int, heartbeat: Callable[[], Awaitable[None]] | None = None
) -> HistoryUpkeep:
    """Compact the routine runs of the whole hours older than :data:`DETAIL_HOURS` (each config's
    hour one row), then drop the days that ended more than ``retention_days`` ago."""
    before = _utc_hour(now - timedelta(hours=DETAIL_HOURS))
    moved = await compact_routine_runs(pool, before=before, heartbeat=heartbeat)
    expired_before = (now - timedelta(days=retention_days)).astimezone(UTC).date()
    return HistoryUpkeep(compacted_runs=moved, dropped_partitions=await drop_expired_days(pool, before=expired_before))
