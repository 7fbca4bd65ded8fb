"""Routes for execution logs, stats, status and chart series."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, HeaderParameter, Parameter
from litestar.response import Stream

from backend.auth.guards import writes_need_admin
from backend.db.pool import Connection
from backend.dependencies import PoolDependency
from backend.errors import NotFoundError
from backend.monitoring import repository
from backend.monitoring.csv_export import export_filename, export_logs_csv
from backend.monitoring.etag import (
    AnswerCache,
    current_data_version,
    current_minute,
    etag_matches,
    make_etag,
    not_modified,
    polled_headers,
)
from backend.monitoring.freshness import (
    FreshnessSummary,
    SeriesFreshness,
    read_freshness_summary,
    read_series_freshness,
)
from backend.monitoring.params import started_range, timeseries_window
from backend.monitoring.schemas import (
    BUCKET_MINUTES,
    MAX_LOG_PAGE,
    Bucket,
    ConfigStats,
    JobExecutionLog,
    JobExecutionStats,
    LogFilters,
    RunStatus,
    Status,
    Timeseries,
)
from backend.scheduling.budget import read_exchange_budgets
from backend.scheduling.status import SchedulerStatus, read_scheduler_status
from backend.settings import Settings
from backend.web.headers import attachment
from backend.web.openapi import csv_download
from backend.web.params import Skip, resource_id, time_parameter

ADMIN_PATH = "/api/v1/admin/data-collection"
RECENT_EXECUTIONS = 10
STATUS_STATS_HOURS = 24
STATUS_STATS_JOB_TYPE = "data_collection"  # the collection runs; not the daily cleanup or other system jobs
NOT_MODIFIED = {304: ResponseSpec(data_container=None, description="Not modified: the If-None-Match tag is current")}
POLLED_HEADERS = [
    ResponseHeader(
        name="ETag",
        documentation_only=True,
        description="Send it back as If-None-Match to get a 304 while nothing changed",
    ),
    ResponseHeader(name="Cache-Control", documentation_only=True, description="no-cache: revalidate every time"),
]

ConfigIdFilter = Annotated[int | None, resource_id("Runs of this config")]
JobTypeFilter = Annotated[str | None, Parameter(description="e.g. data_collection, cleanup")]
Hours = Annotated[int, Parameter(ge=1, le=720, description="The last N hours (1 to 720)")]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(name="If-None-Match", description="The ETag of an earlier answer: 304 while nothing changed"),
]
DateFilter = Annotated[str | None, time_parameter("ISO 8601 date or date-time; without a zone it is UTC; inclusive")]


def provide_log_filters(
    job_name: FromQuery[str | None] = None,
    job_type: JobTypeFilter = None,
    symbol: FromQuery[str | None] = None,
    status: FromQuery[RunStatus | None] = None,
    start_date: DateFilter = None,
    end_date: DateFilter = None,
    config_id: ConfigIdFilter = None,
    exchange: FromQuery[str | None] = None,
) -> LogFilters:
    """The log filters of the query string, shared by the list and the CSV export."""
    started_from, started_before = started_range(start_date, end_date)
    return LogFilters(
        job_name=job_name,
        job_type=job_type,
        symbol=symbol.upper() if symbol else None,
        status=status,
        config_id=config_id,
        exchange=exchange.lower() if exchange else None,
        started_from=started_from,
        started_before=started_before,
    )


def _answer_cache(request: Request[Any, Any, Any]) -> AnswerCache:
    cache: AnswerCache = request.app.state.answer_cache
    return cache


class ExecutionLogController(Controller):
    path = f"{ADMIN_PATH}/execution-logs"
    tags = ["execution logs"]
    guards = [writes_need_admin]
    dependencies = {"filters": Provide(provide_log_filters, sync_to_thread=False)}

    @get(
        "/",
        operation_id="listExecutionLogs",
        response_headers=[
            ResponseHeader(
                name="X-Total-Count",
                documentation_only=True,
                description=f"How many logs match the filters: counted up to {repository.COUNT_EXACT_UP_TO:,}, "
                "PostgreSQL's estimate beyond (see X-Total-Count-Exact)",
            ),
            ResponseHeader(
                name="X-Total-Count-Exact",
                documentation_only=True,
                description="true when X-Total-Count is an exact count, false when it is an estimate",
            ),
        ],
    )
    async def list_logs(
        self,
        pool: PoolDependency,
        filters: NamedDependency[LogFilters],
        skip: Skip = 0,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LOG_PAGE)] = 100,
    ) -> Response[list[JobExecutionLog]]:
        """Logs matching every filter given, newest first; `X-Total-Count` has the filtered total,
        exact up to 10,000 and estimated beyond (`X-Total-Count-Exact: false`)."""
        logs = await repository.list_logs(pool, filters=filters, skip=skip, limit=limit)
        count = await repository.count_logs(pool, filters=filters)
        return Response(
            logs, headers={"X-Total-Count": str(count.total), "X-Total-Count-Exact": "true" if count.exact else "false"}
        )

    @get("/{log_id:int}", operation_id="getExecutionLog")
    async def get_log(self, pool: PoolDependency, log_id: Annotated[int, resource_id("Log id")]) -> JobExecutionLog:
        """One execution log."""
        log = await repository.get_log(pool, log_id=log_id)
        if log is None:
            raise NotFoundError(f"Execution log {log_id} not found")
        return log

    @get("/export.csv", operation_id="exportExecutionLogs", media_type="text/csv", opt={"openapi": csv_download()})
    async def export_csv(
        self,
        pool: PoolDependency,
        filters: NamedDependency[LogFilters],
    ) -> Stream:
        """Every log matching the filters, newest first, as CSV (RFC 4180, header row), streamed."""
        filename = export_filename(datetime.now(UTC))
        return Stream(
            export_logs_csv(pool, filters=filters),
            media_type="text/csv",
            headers={"Content-Disposition": attachment(filename)},
        )


class StatsController(Controller):
    """Polled answers: each has an ETag; If-None-Match with it answers 304 without computing anything."""

    path = ADMIN_PATH
    tags = ["stats"]
    guards = [writes_need_admin]

    @get("/stats", operation_id="getStats", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS)
    async def stats(
        self,
        request: Request[Any, Any, Any],
        pool: PoolDependency,
        if_none_match: IfNoneMatch = None,
        job_type: JobTypeFilter = None,
        hours: Hours = 24,
    ) -> Response[JobExecutionStats]:
        """Counts, success rate and durations of the runs that started in the last `hours`."""
        minute = current_minute()
        etag = make_etag("stats", job_type, hours, minute, await current_data_version(request, pool))
        if etag_matches(if_none_match, etag):
            return not_modified(etag)
        since = minute - timedelta(hours=hours)
        stats = await _answer_cache(request).get_or_compute(
            etag, lambda: repository.read_stats(pool, since=since, job_type=job_type)
        )
        return Response(stats, headers=polled_headers(etag))

    @get("/status", operation_id="getStatus", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS)
    async def status(
        self, request: Request[Any, Any, Any], pool: PoolDependency, if_none_match: IfNoneMatch = None
    ) -> Response[Status]:
        """Configs, active jobs, the last 10 runs (of any job), the stats of the last 24 hours'
        collection runs (`job_type` `data_collection`: the daily cleanup is not counted), the scheduler's state,
        and the freshness of the collected series (how many are stale, the worst few).

        The tag leaves out `scheduler.heartbeat_age_seconds`, which ages every second. The scheduler
        state is read at most once a second per process while the data stays the same (every
        dashboard polls this route), so heartbeats and slot claims show up within a second.
        """
        minute = current_minute()
        version = await current_data_version(request, pool)
        scheduler, scheduler_tag = await _answer_cache(request).get_or_compute(
            make_etag("scheduler", version, int(time.time())), lambda: _read_scheduler(pool)
        )
        etag = make_etag("status", minute, version, scheduler_tag)
        if etag_matches(if_none_match, etag):
            return not_modified(etag)
        settings: Settings = request.app.state.settings
        status = await _answer_cache(request).get_or_compute(
            etag, lambda: _read_status(pool, minute, scheduler, settings)
        )
        return Response(msgspec.structs.replace(status, scheduler=scheduler), headers=polled_headers(etag))

    @get("/freshness", operation_id="getFreshness", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS)
    async def freshness(
        self, request: Request[Any, Any, Any], pool: PoolDependency, if_none_match: IfNoneMatch = None
    ) -> Response[list[SeriesFreshness]]:
        """Every series (timeframe) of every enabled config: its newest stored candle, the lag since
        that candle closed, and whether it is stale (judged once a minute, and after every run)."""
        minute = current_minute()
        etag = make_etag("freshness", minute, await current_data_version(request, pool))
        if etag_matches(if_none_match, etag):
            return not_modified(etag)
        settings: Settings = request.app.state.settings
        series = await _answer_cache(request).get_or_compute(
            etag, lambda: read_series_freshness(pool, settings=settings)
        )
        return Response(series, headers=polled_headers(etag))

    @get(
        "/stats/timeseries", operation_id="getStatsTimeseries", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS
    )
    async def timeseries(
        self,
        request: Request[Any, Any, Any],
        pool: PoolDependency,
        if_none_match: IfNoneMatch = None,
        hours: Hours = 24,
        bucket: FromQuery[Bucket] = "1h",
        job_type: JobTypeFilter = None,
        config_id: ConfigIdFilter = None,
    ) -> Response[Timeseries]:
        """One point per UTC bucket (empty ones included) for charts; at most 2000 points."""
        minute = current_minute()
        start, end = timeseries_window(hours=hours, bucket=bucket, now=minute)
        etag = make_etag(
            "timeseries", hours, bucket, job_type, config_id, minute, await current_data_version(request, pool)
        )
        if etag_matches(if_none_match, etag):
            return not_modified(etag)

        async def compute() -> Timeseries:
            points = await repository.read_timeseries(
                pool,
                start=start,
                end=end,
                bucket_minutes=BUCKET_MINUTES[bucket],
                job_type=job_type,
                config_id=config_id,
            )
            return Timeseries(bucket=bucket, start=start, end=end, points=points)

        series = await _answer_cache(request).get_or_compute(etag, compute)
        return Response(series, headers=polled_headers(etag))

    @get("/stats/by-config", operation_id="getStatsByConfig", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS)
    async def by_config(
        self,
        request: Request[Any, Any, Any],
        pool: PoolDependency,
        if_none_match: IfNoneMatch = None,
        hours: Hours = 24,
    ) -> Response[list[ConfigStats]]:
        """Every config with its runs, failures, success rate, duration and records in the last `hours`."""
        minute = current_minute()
        etag = make_etag("by-config", hours, minute, await current_data_version(request, pool))
        if etag_matches(if_none_match, etag):
            return not_modified(etag)
        since = minute - timedelta(hours=hours)
        rows = await _answer_cache(request).get_or_compute(
            etag, lambda: repository.read_stats_by_config(pool, since=since)
        )
        return Response(rows, headers=polled_headers(etag))


async def _read_scheduler(pool: PoolDependency) -> tuple[SchedulerStatus, bytes]:
    """The scheduler's state, and what of it the tag is made of (all but the heartbeat's age)."""
    scheduler = await read_scheduler_status(pool)
    return scheduler, msgspec.json.encode(msgspec.structs.replace(scheduler, heartbeat_age_seconds=None))


async def _read_status(
    pool: PoolDependency, minute: datetime, scheduler: SchedulerStatus, settings: Settings
) -> Status:
    """The freshness of every series (the longest read) on a connection of its own, beside the
    other reads, one after the other on a second one: a computed answer holds two of the pool's
    connections for a few milliseconds (answers are computed once per data change, whoever polls)."""
    async with asyncio.TaskGroup() as reads:
        freshness = reads.create_task(_read_freshness(pool, settings))
        async with pool.acquire() as proxy:
            conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
            counts = await repository.count_configs(conn)
            recent = await repository.list_logs(conn, filters=LogFilters(), skip=0, limit=RECENT_EXECUTIONS)
            stats = await repository.read_stats(
                conn, since=minute - timedelta(hours=STATUS_STATS_HOURS), job_type=STATUS_STATS_JOB_TYPE
            )
            exchanges = await read_exchange_budgets(
                conn, overrides=settings.exchange_overrides, interval_unit_seconds=settings.interval_unit_seconds
            )
    return Status(
        total_configs=counts.total_configs,
        enabled_configs=counts.enabled_configs,
        disabled_configs=counts.disabled_configs,
        active_jobs=scheduler.active_jobs,
        recent_executions=recent,
        stats=stats,
        scheduler=scheduler,
        freshness=freshness.result(),
        exchanges=exchanges,
    )


async def _read_freshness(pool: PoolDependency, settings: Settings) -> FreshnessSummary:
    async with pool.acquire() as proxy:
        return await read_freshness_summary(cast(Connection, proxy), settings=settings)
