"""SQL of the monitoring routes. Every aggregate runs in PostgreSQL over an index range.

Log filters are ANDed conditions chosen from ``FILTER_CONDITIONS`` (an allow-list), each with its
own ``$n`` parameter, so each combination gets a plan that uses the index made for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
from asyncpg import Record

from backend.db.pool import Connection, Pool
from backend.monitoring.schemas import (
    ConfigCounts,
    ConfigStats,
    ConsecutiveFailures,
    JobExecutionLog,
    JobExecutionStats,
    LogFilters,
    TimeseriesPoint,
)

LOG_COLUMNS = """
    id, job_name, job_type, symbol, exchange, timeframe, started_at, finished_at, duration_seconds,
    status, records_collected, error_message, error_type, error_cause, metadata, config_id, trigger, scheduled_for,
    missed_slots
"""
# LogFilters field -> condition; "{}" is the parameter number
FILTER_CONDITIONS = {
    "job_name": "job_name = ${}",
    "job_type": "job_type = ${}",
    "symbol": "symbol = ${}",
    "status": "status = ${}",
    "config_id": "config_id = ${}",
    "exchange": "exchange = ${}",
    "started_from": "started_at >= ${}",
    "started_before": "started_at < ${}",
}
NEWEST_FIRST = "ORDER BY started_at DESC, id DESC"

LIST_LOGS = "SELECT {columns} FROM job_execution_logs {where} {order} OFFSET ${skip} LIMIT ${limit}"
# Counting stops one past COUNT_EXACT_UP_TO matches; past it, the planner's estimate stands in.
COUNT_EXACT_UP_TO = 10_000
COUNT_LOGS = "SELECT count(*) FROM (SELECT FROM job_execution_logs {where} LIMIT ${limit}) AS matched"
ESTIMATE_LOGS = "EXPLAIN (FORMAT JSON) SELECT FROM job_execution_logs {where}"
# the columns are formatted under their own names, so the order names the table's (an index range)
EXPORT_LOGS = """
SELECT {columns} FROM job_execution_logs AS log {where} ORDER BY log.started_at DESC, log.id DESC LIMIT ${limit}
"""
# the next batch of an export: rows after the last one sent, in NEWEST_FIRST order (its started_at
# as exported, ISO 8601 to the microsecond, and its id)
EXPORT_AFTER = "(started_at, id) < (${}::text::timestamptz, ${}::bigint)"
GET_LOG = f"SELECT {LOG_COLUMNS} FROM job_execution_logs WHERE id = $1"

# Summed from the per-minute counts (job_execution_minutes, kept by triggers): a day is at most
# 1440 minutes x statuses x job types rows, whatever the number of runs. $1 is a whole minute.
# success_rate: percent of finished runs that succeeded; 0 when none finished.
STATS = """
SELECT coalesce(sum(runs), 0)::bigint AS total_executions,
       coalesce(sum(runs) FILTER (WHERE status = 'success'), 0)::bigint AS successful_executions,
       coalesce(sum(runs) FILTER (WHERE status = 'failed'), 0)::bigint AS failed_executions,
       coalesce(sum(runs) FILTER (WHERE status = 'running'), 0)::bigint AS running_executions,
       coalesce(sum(runs) FILTER (WHERE status = 'partial'), 0)::bigint AS partial_executions,
       coalesce(round(100.0 * sum(runs) FILTER (WHERE status = 'success')
                      / nullif(sum(runs) FILTER (WHERE status <> 'running'), 0), 2), 0)::float8 AS success_rate,
       round((sum(duration_seconds) / nullif(sum(timed_runs), 0))::numeric, 3)::float8 AS average_duration_seconds,
       coalesce(sum(records_collected), 0)::bigint AS total_records_collected,
       (SELECT max(started_at) FROM job_execution_logs
        WHERE started_at >= $1 AND ($2::text IS NULL OR job_type = $2)) AS last_execution
FROM job_execution_minutes
WHERE minute >= $1 AND ($2::text IS NULL OR job_type = $2)
"""

CONFIG_COUNTS = """
SELECT count(*) AS total_configs,
       count(*) FILTER (WHERE enabled) AS enabled_configs,
       count(*) FILTER (WHERE NOT enabled) AS disabled_configs
FROM data_collection_configs
"""

# $1 first bucket, $2 end (exclusive), $3 bucket minutes. Buckets are whole minutes of absolute
# time (make_interval(mins => ...) has no day part), so the session's TimeZone and its daylight
# saving never move an edge. Lateness is of scheduled runs only.
TIMESERIES = """
WITH points AS (
    SELECT generate_series($1::timestamptz, $2::timestamptz - make_interval(mins => $3), make_interval(mins => $3))
        AS bucket_start
), runs AS (
    SELECT date_bin(make_interval(mins => $3), started_at, $1::timestamptz) AS bucket_start,
           status, duration_seconds, records_collected,
           CASE WHEN trigger = 'schedule' THEN extract(epoch FROM started_at - scheduled_for)::float8 END AS lateness
    FROM job_execution_logs {where}
    UNION ALL
    SELECT date_bin(make_interval(mins => $3), started_minute, $1::timestamptz),
           'success', duration_seconds, records_collected, lateness_seconds
    FROM compacted_run_values($1::timestamptz, $2::timestamptz) AS compacted
    WHERE ({job_type}::text IS NULL OR {job_type} = 'data_collection')
      AND ({config_id}::bigint IS NULL OR compacted.config_id = {config_id})
), buckets AS (
    SELECT bucket_start,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'success') AS successes,
           count(*) FILTER (WHERE status = 'failed') AS failures,
           count(*) FILTER (WHERE status = 'partial') AS partials,
           round(100.0 * count(*) FILTER (WHERE status = 'success')
                 / nullif(count(*) FILTER (WHERE status <> 'running'), 0), 2)::float8 AS success_rate,
           round(avg(duration_seconds::numeric), 3)::float8 AS average_duration_seconds,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds))::numeric, 3)::float8
               AS p95_duration_seconds,
           coalesce(sum(records_collected), 0)::bigint AS records_collected,
           round(avg(lateness::numeric), 3)::float8 AS average_lateness_seconds,
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY lateness))::numeric, 3)::float8
               AS p95_lateness_seconds
    FROM runs GROUP BY bucket_start
)
SELECT points.bucket_start,
       coalesce(runs, 0) AS runs, coalesce(successes, 0) AS successes, coalesce(failures, 0) AS failures,
       coalesce(partials, 0) AS partials, success_rate, average_duration_seconds, p95_duration_seconds,
       coalesce(records_collected, 0) AS records_collected, average_lateness_seconds, p95_lateness_seconds
FROM points LEFT JOIN buckets USING (bucket_start)
ORDER BY points.bucket_start
"""

# Every config, with its runs in the window ($1 = window start), logged or compacted; the latest
# run and the latest error are one index probe each (the latest runs are never compacted).
STATS_BY_CONFIG = """
WITH runs AS (
    SELECT config_id, status, duration_seconds, records_collected
    FROM job_execution_logs
    WHERE started_at >= $1 AND config_id IS NOT NULL
    UNION ALL
    SELECT config_id, 'success', duration_seconds, records_collected
    FROM compacted_run_values($1::timestamptz, 'infinity') AS compacted
    WHERE config_id IS NOT NULL
), window_runs AS (
    SELECT config_id,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'success') AS successes,
           count(*) FILTER (WHERE status = 'failed') AS failures,
           count(*) FILTER (WHERE status = 'partial') AS partials,
           round(100.0 * count(*) FILTER (WHERE status = 'success')
                 / nullif(count(*) FILTER (WHERE status <> 'running'), 0), 2)::float8 AS success_rate,
           round(avg(duration_seconds::numeric), 3)::float8 AS average_duration_seconds,
           coalesce(sum(records_collected), 0)::bigint AS records_collected
    FROM runs
    GROUP BY config_id
)
SELECT config.id AS config_id, config.symbol, config.exchange, config.enabled,
       coalesce(runs, 0) AS runs, coalesce(successes, 0) AS successes, coalesce(failures, 0) AS failures,
       coalesce(partials, 0) AS partials, success_rate, average_duration_seconds,
       coalesce(records_collected, 0) AS records_collected,
       last_run.started_at AS last_run_at, last_run.status AS last_run_status,
       last_error.error_message AS last_error, last_error.error_cause AS last_error_cause,
       last_error.started_at AS last_error_at
FROM data_collection_configs AS config
LEFT JOIN window_runs ON window_runs.config_id = config.id
LEFT JOIN LATERAL (
    SELECT started_at, status FROM job_execution_logs
    WHERE config_id = config.id ORDER BY started_at DESC LIMIT 1
) AS last_run ON true
LEFT JOIN LATERAL (
    SELECT started_at, error_message, error_cause FROM job_execution_logs
    WHERE config_id = config.id AND status IN ('failed', 'partial') ORDER BY started_at DESC LIMIT 1
) AS last_error ON true
ORDER BY config.id
"""

# Per enabled config: how many of its latest finished runs failed in a row (counted up to $1). The
# latest finished run is one index probe; only when it failed are the latest $1 read.
CONSECUTIVE_FAILURES = """
SELECT config.id AS config_id, config.exchange, config.symbol,
       CASE WHEN latest.status IS DISTINCT FROM 'failed' THEN 0 ELSE (
           SELECT coalesce(min(position) FILTER (WHERE status <> 'failed') - 1, count(*))
           FROM (
               SELECT status, row_number() OVER (ORDER BY started_at DESC) AS position
               FROM (
                   SELECT status, started_at FROM job_execution_logs
                   WHERE config_id = config.id AND status <> 'running'
                   ORDER BY started_at DESC LIMIT $1
               ) AS newest
           ) AS ranked
       ) END::integer AS failures
FROM data_collection_configs AS config
LEFT JOIN LATERAL (
    SELECT status FROM job_execution_logs
    WHERE config_id = config.id AND status <> 'running'
    ORDER BY started_at DESC LIMIT 1
) AS latest ON true
WHERE config.enabled
ORDER BY config.id
"""

# The CSV export's columns, formatted by PostgreSQL: times as ISO 8601 UTC, metadata as JSON text.
EXPORT_COLUMNS = (
    "id",
    "job_name",
    "job_type",
    "config_id",
    "symbol",
    "exchange",
    "timeframe",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "duration_seconds",
    "records_collected",
    "scheduled_for",
    "missed_slots",
    "error_type",
    "error_message",
    "metadata",
)
TIME_COLUMNS = ("started_at", "finished_at", "scheduled_for")


def _export_expression(name: str) -> str:
    if name in TIME_COLUMNS:
        return f"""to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS {name}"""
    if name == "metadata":
        return "metadata::text AS metadata"
    return name


EXPORT_SELECT = ", ".join(_export_expression(name) for name in EXPORT_COLUMNS)
EXPORT_BATCH_ROWS = 2000


def where_clause(filters: LogFilters, first_parameter: int = 1) -> tuple[str, list[Any]]:
    """The WHERE clause of ``filters`` (empty when none is set) and its parameters, in order."""
    conditions: list[str] = []
    parameters: list[Any] = []
    for name, condition in FILTER_CONDITIONS.items():
        value = getattr(filters, name)
        if value is not None:
            parameters.append(value)
            conditions.append(condition.format(first_parameter + len(parameters) - 1))
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), parameters


def _to_log(row: Any) -> JobExecutionLog:
    return msgspec.convert(dict(row), JobExecutionLog)


async def list_logs(db: Pool | Connection, *, filters: LogFilters, skip: int, limit: int) -> list[JobExecutionLog]:
    """One page of the filtered logs, newest first."""
    where, parameters = where_clause(filters)
    sql = LIST_LOGS.format(
        columns=LOG_COLUMNS, where=where, order=NEWEST_FIRST, skip=len(parameters) + 1, limit=len(parameters) + 2
    )
    return [_to_log(row) for row in await db.fetch(sql, *parameters, skip, limit)]


class LogCount(msgspec.Struct, kw_only=True, frozen=True):
    """How many logs match: exact up to ``COUNT_EXACT_UP_TO``, the planner's estimate beyond."""

    total: int
    exact: bool


async def count_logs(db: Pool | Connection, *, filters: LogFilters) -> LogCount:
    """Counting a million matches would cost more than the page: past ``COUNT_EXACT_UP_TO`` the
    count is PostgreSQL's estimate (from the table's statistics), never below the matches seen."""
    where, parameters = where_clause(filters)
    sql = COUNT_LOGS.format(where=where, limit=len(parameters) + 1)
    counted: int = await db.fetchval(sql, *parameters, COUNT_EXACT_UP_TO + 1)
    if counted <= COUNT_EXACT_UP_TO:
        return LogCount(total=counted, exact=True)
    plan = json.loads(await db.fetchval(ESTIMATE_LOGS.format(where=where), *parameters))
    return LogCount(total=max(counted, int(plan[0]["Plan"]["Plan Rows"])), exact=False)


async def get_log(db: Pool | Connection, *, log_id: int) -> JobExecutionLog | None:
    row = await db.fetchrow(GET_LOG, log_id)
    return None if row is None else _to_log(row)


def export_queries(filters: LogFilters) -> tuple[str, str, list[Any]]:
    """The export's first batch and next batches: SQL taking the filter parameters, then (next
    batches only) the last row's ``started_at`` and ``id``, then the batch size."""
    where, parameters = where_clause(filters)
    after = EXPORT_AFTER.format(len(parameters) + 1, len(parameters) + 2)
    first_sql = EXPORT_LOGS.format(columns=EXPORT_SELECT, where=where, limit=len(parameters) + 1)
    next_sql = EXPORT_LOGS.format(
        columns=EXPORT_SELECT, where=f"{where} AND {after}" if where else f"WHERE {after}", limit=len(parameters) + 3
    )
    return first_sql, next_sql, parameters


async def stream_export_rows(pool: Pool, *, filters: LogFilters) -> AsyncIterator[list[Record]]:
    """The filtered logs as ``EXPORT_COLUMNS`` rows, newest first, ``EXPORT_BATCH_ROWS`` at a time.

    Each batch is one short query on a pooled connection, released before the batch is handed on:
    a client that reads slowly (or stops) holds no connection while it takes its time. A batch
    starts after the last row of the one before (keyset on ``started_at, id``), so each row comes
    once, as it stood when its batch was read.
    """
    first_sql, next_sql, parameters = export_queries(filters)
    batch = await pool.fetch(first_sql, *parameters, EXPORT_BATCH_ROWS)
    while batch:
        yield batch
        if len(batch) < EXPORT_BATCH_ROWS:
            return
        last = batch[-1]
        batch = await pool.fetch(next_sql, *parameters, last["started_at"], last["id"], EXPORT_BATCH_ROWS)


async def read_stats(db: Pool | Connection, *, since: datetime, job_type: str | None) -> JobExecutionStats:
    """Stats of the runs that started at or after ``since`` (a whole minute), of one job type or all."""
    if since.second or since.microsecond:
        raise ValueError(f"since must be a whole minute, got {since.isoformat()}")
    row = await db.fetchrow(STATS, since, job_type)
    return msgspec.convert(dict(row or {}), JobExecutionStats)


async def count_configs(db: Pool | Connection) -> ConfigCounts:
    return msgspec.convert(dict(await db.fetchrow(CONFIG_COUNTS) or {}), ConfigCounts)


def timeseries_query(
    *, start: datetime, end: datetime, bucket_minutes: int, job_type: str | None, config_id: int | None
) -> tuple[str, list[Any]]:
    """The timeseries statement over [start, end) and its parameters: the logs' and the compacted runs'."""
    filters = LogFilters(started_from=start, started_before=end, job_type=job_type, config_id=config_id)
    where, parameters = where_clause(filters, first_parameter=4)
    sql = TIMESERIES.format(
        where=where,
        job_type=f"${len(parameters) + 4}",
        config_id=f"${len(parameters) + 5}",
    )
    return sql, [start, end, bucket_minutes, *parameters, job_type, config_id]


async def read_timeseries(
    db: Pool | Connection,
    *,
    start: datetime,
    end: datetime,
    bucket_minutes: int,
    job_type: str | None,
    config_id: int | None,
) -> list[TimeseriesPoint]:
    """One point per bucket in [start, end), empty buckets included; ``start`` is a bucket edge."""
    sql, parameters = timeseries_query(
        start=start, end=end, bucket_minutes=bucket_minutes, job_type=job_type, config_id=config_id
    )
    rows = await db.fetch(sql, *parameters)
    return [msgspec.convert(dict(row), TimeseriesPoint) for row in rows]


async def read_consecutive_failures(db: Pool | Connection, *, up_to: int) -> list[ConsecutiveFailures]:
    """Every enabled config with the number of its latest finished runs that failed in a row (at most ``up_to``)."""
    rows = await db.fetch(CONSECUTIVE_FAILURES, up_to)
    return [msgspec.convert(dict(row), ConsecutiveFailures) for row in rows]


async def read_stats_by_config(db: Pool | Connection, *, since: datetime) -> list[ConfigStats]:
    rows = await db.fetch(STATS_BY_CONFIG, since)
    return [msgspec.convert(dict(row), ConfigStats) for row in rows]
