"""What the monitoring routes answer: execution logs, stats, status and chart series."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from backend.monitoring.freshness import FreshnessSummary
from backend.scheduling.budget import ExchangeBudget
from backend.scheduling.status import SchedulerStatus

RunStatus = Literal["running", "success", "failed", "partial"]
Bucket = Literal["1m", "5m", "15m", "1h", "6h", "1d"]
BUCKET_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "6h": 360, "1d": 1440}
MAX_TIMESERIES_POINTS = 2000
MAX_LOG_PAGE = 1000


class JobExecutionLog(msgspec.Struct, kw_only=True):
    """One run of a job. ``status`` is ``partial`` when some timeframes failed and others succeeded.

    ``config_id`` is null once the config is deleted; ``trigger`` is ``schedule``, ``manual`` or
    ``system``; ``scheduled_for`` is the slot a scheduled run serves and ``missed_slots`` the slots
    collapsed into this run after downtime. ``error_cause`` says in a few plain words why it failed
    (``cannot reach api.binance.com: name not resolved``), each cause once for the whole run;
    ``error_message`` keeps every failed timeframe's full error.
    """

    id: int
    job_name: str
    job_type: str
    symbol: str | None
    exchange: str | None
    timeframe: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    status: RunStatus
    records_collected: int | None
    error_message: str | None
    error_type: str | None
    error_cause: str | None
    metadata: dict[str, Any] | None
    config_id: int | None
    trigger: str | None
    scheduled_for: datetime | None
    missed_slots: int


class LogFilters(msgspec.Struct, kw_only=True, frozen=True):
    """The filters of the log list and the CSV export; None means "any". Times are UTC-aware.

    ``started_from`` is inclusive, ``started_before`` exclusive.
    """

    job_name: str | None = None
    job_type: str | None = None
    symbol: str | None = None
    status: RunStatus | None = None
    config_id: int | None = None
    exchange: str | None = None
    started_from: datetime | None = None
    started_before: datetime | None = None


class JobExecutionStats(msgspec.Struct, kw_only=True):
    """Runs that started in the window.

    ``success_rate`` is the percentage (2 decimals) of finished runs (success, failed or partial)
    that succeeded, 0 when none finished. ``partial_executions``: runs where some timeframes failed,
    counted neither as successful nor as failed.
    """

    total_executions: int
    successful_executions: int
    failed_executions: int
    running_executions: int
    partial_executions: int
    success_rate: float
    average_duration_seconds: float | None
    total_records_collected: int
    last_execution: datetime | None


class Status(msgspec.Struct, kw_only=True):
    """The dashboard's overview. ``scheduler``, ``freshness`` (how many series of the enabled
    configs are stale, and the worst few) and ``exchanges`` (each exchange's demand against its
    request budget, and how far behind its runs are) are additions; ``active_jobs`` comes from
    ``scheduler``; ``stats`` counts the collection runs of the last 24 hours."""

    total_configs: int
    enabled_configs: int
    disabled_configs: int
    active_jobs: int
    recent_executions: list[JobExecutionLog]
    stats: JobExecutionStats
    scheduler: SchedulerStatus
    freshness: FreshnessSummary
    exchanges: list[ExchangeBudget]


class ConfigCounts(msgspec.Struct, kw_only=True, frozen=True):
    total_configs: int
    enabled_configs: int
    disabled_configs: int


class ConsecutiveFailures(msgspec.Struct, kw_only=True, frozen=True):
    """An enabled config and how many of its latest finished runs failed in a row."""

    config_id: int
    exchange: str
    symbol: str
    failures: int


class TimeseriesPoint(msgspec.Struct, kw_only=True):
    """One bucket. Counts are 0 in an empty bucket; rates, durations and lateness are null there.

    ``lateness`` is ``started_at - scheduled_for`` of scheduled runs, in seconds.
    """

    bucket_start: datetime
    runs: int
    successes: int
    failures: int
    partials: int
    success_rate: float | None
    average_duration_seconds: float | None
    p95_duration_seconds: float | None
    records_collected: int
    average_lateness_seconds: float | None
    p95_lateness_seconds: float | None


class Timeseries(msgspec.Struct, kw_only=True):
    """Points oldest first, one per bucket from ``start`` up to ``end`` (exclusive), buckets on UTC."""

    bucket: Bucket
    start: datetime
    end: datetime
    points: list[TimeseriesPoint]


class ConfigStats(msgspec.Struct, kw_only=True):
    """A config's runs that started in the window, and its latest run and error whenever they were."""

    config_id: int
    symbol: str
    exchange: str
    enabled: bool
    runs: int
    successes: int
    failures: int
    partials: int
    success_rate: float | None
    average_duration_seconds: float | None
    records_collected: int
    last_run_at: datetime | None
    last_run_status: RunStatus | None
    last_error: str | None
    last_error_cause: str | None
    last_error_at: datetime | None
