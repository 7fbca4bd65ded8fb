"""``GET /metrics``: the Prometheus text format, from Litestar's Prometheus plugin and ``prometheus_client``.

Two kinds of values:

- **The whole system** (runs, candles, freshness, exchanges, schedulers), read from PostgreSQL at
  scrape time by :func:`read_system_snapshot` and exposed by :class:`SystemCollector`: any web
  process answers the same, and counters never reset on a restart. Counters come from totals
  kept by the statements that end runs (``backend.runs.totals``) and by each process's exchange
  clients (``backend.collection.exchange_states``), so they keep growing when retention deletes logs.
- **This process** (HTTP requests, from the plugin's middleware; the database pool), labelled
  ``process`` with :func:`backend.process.process_identity`.

Readable by any signed-in user, or with ``METRICS_TOKEN`` (:func:`backend.auth.guards.reads_metrics`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

import msgspec
from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from backend.auth.guards import reads_metrics
from backend.collection.exchange_states import ExchangeState, read_exchange_states
from backend.db.pool import Connection, Pool
from backend.dependencies import PoolDependency
from backend.monitoring.freshness import JudgedSeries, judge_series
from backend.monitoring.repository import count_configs, read_consecutive_failures
from backend.monitoring.schemas import ConfigCounts, ConsecutiveFailures
from backend.process import process_identity
from backend.runs.totals import RunHistogram, RunTotals, read_run_histograms, read_run_totals
from backend.scheduling.status import SchedulerStatus, read_scheduler_status
from backend.settings import Settings

PREFIX = "altar"
METRICS_PATH = "/metrics"
# consecutive failed runs are counted up to this many (alert thresholds stay below it)
CONSECUTIVE_FAILURES_COUNTED = 20
EXCHANGE_STATES = ("ok", "paused", "banned")


def http_metrics_config() -> PrometheusConfig:
    """The plugin's HTTP metrics: ``altar_http_requests_total``, ``altar_http_request_duration_seconds``,
    ``altar_http_requests_in_progress`` and ``altar_http_requests_error_total``, by method, route
    template (bounded: never the raw path) and status code, labelled with this process."""
    return PrometheusConfig(
        app_name="altar_trader_hub",
        prefix=f"{PREFIX}_http",
        labels={"process": process_identity()},
        group_path=True,
        scopes={ScopeType.HTTP},
    )


class SystemSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """What ``/metrics`` reports of the whole system, read in one go."""

    run_totals: list[RunTotals]
    run_histograms: list[RunHistogram]
    series: list[JudgedSeries]
    exchanges: list[ExchangeState]
    scheduler: SchedulerStatus
    configs: ConfigCounts
    consecutive_failures: list[ConsecutiveFailures]


async def read_system_snapshot(pool: Pool, *, settings: Settings, now: datetime | None = None) -> SystemSnapshot:
    """Every whole-system value, from PostgreSQL, on two connections: the failures in a row of every
    enabled config (a probe of each one's newest runs, the longest read) beside the rest. A scrape
    comes every few seconds at most, so it may hold two of the pool's connections for a moment."""
    async with asyncio.TaskGroup() as reads:
        failures = reads.create_task(_read_failures(pool))
        async with pool.acquire() as proxy:
            conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
            run_totals = await read_run_totals(conn)
            run_histograms = await read_run_histograms(conn)
            series = await judge_series(conn, now=now, settings=settings)
            exchanges = await read_exchange_states(conn)
            scheduler = await read_scheduler_status(conn)
            configs = await count_configs(conn)
    return SystemSnapshot(
        run_totals=run_totals,
        run_histograms=run_histograms,
        series=series,
        exchanges=exchanges,
        scheduler=scheduler,
        configs=configs,
        consecutive_failures=failures.result(),
    )


async def _read_failures(pool: Pool) -> list[ConsecutiveFailures]:
    async with pool.acquire() as proxy:
        return await read_consecutive_failures(cast(Connection, proxy), up_to=CONSECUTIVE_FAILURES_COUNTED)


def _name(name: str) -> str:
    return f"{PREFIX}_{name}"


class SystemCollector(Collector):
    """The whole-system metrics of one snapshot."""

    def __init__(self, snapshot: SystemSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        yield from self._candles()
        yield from self._histograms()
        yield from self._freshness()
        yield from self._exchanges()
        yield from self._scheduler()

    def _runs(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            _name("runs"),
            "Runs that ended, by job type, exchange, trigger and final status",
            labels=["job_type", "exchange", "trigger", "status"],
        )
        for totals in self._snapshot.run_totals:
            runs.add_metric([totals.job_type, totals.exchange, totals.trigger, totals.status], totals.runs)
        yield runs
        missed = CounterMetricFamily(
            _name("missed_slots"),
            "Schedule slots that passed without their own run (collapsed into a later run), by exchange",
            labels=["exchange"],
        )
        for exchange, value in _sum_by_exchange(self._snapshot.run_totals, "missed_slots").items():
            missed.add_metric([exchange], value)
        yield missed

    def _candles(self) -> Iterator[Metric]:
        for field, name, documentation in (
            ("candles_stored", "candles_stored", "Candles stored (inserted or changed) by collection runs"),
            ("candles_rejected", "candles_rejected", "Candles the exchange sent that broke the rules (not stored)"),
            ("candles_revised", "candles_revised", "Stored candles the exchange changed afterwards, rewritten"),
        ):
            family = CounterMetricFamily(_name(name), f"{documentation}, by exchange", labels=["exchange"])
            totals = self._snapshot.run_totals
            for exchange, value in _sum_by_exchange(totals, field, job_type="data_collection").items():
                family.add_metric([exchange], value)
            yield family

    def _histograms(self) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            _name("run_duration_seconds"), "Duration of runs that ended", labels=["job_type", "exchange"]
        )
        lateness = HistogramMetricFamily(
            _name("run_lateness_seconds"),
            "How late scheduled runs started after their slot",
            labels=["exchange"],
        )
        sums: dict[tuple[str, str, str], float] = {}
        for totals in self._snapshot.run_totals:
            for name, value in (("duration", totals.duration_seconds), ("lateness", totals.lateness_seconds)):
                key = (name, totals.job_type, totals.exchange)
                sums[key] = sums.get(key, 0.0) + value
        for histogram in self._snapshot.run_histograms:
            buckets = [
                (_bucket_label(bound), float(count))
                for bound, count in zip(histogram.bounds, histogram.cumulative_runs, strict=True)
            ]
            key = (histogram.histogram, histogram.job_type, histogram.exchange)
            if histogram.histogram == "duration":
                duration.add_metric([histogram.job_type, histogram.exchange], buckets, sums.get(key, 0.0))
            else:
                lateness.add_metric([histogram.exchange], buckets, sums.get(key, 0.0))
        yield duration
        yield lateness

    def _freshness(self) -> Iterator[Metric]:
        labels = ["exchange", "symbol", "timeframe"]
        lag = GaugeMetricFamily(
            _name("series_lag_seconds"),
            "Seconds since the newest stored candle of the series closed (series with a candle only)",
            labels=labels,
        )
        stale = GaugeMetricFamily(
            _name("series_stale"),
            "1 for each series that is stale (no new candle for one candle + two intervals + "
            "FRESHNESS_MARGIN_SECONDS); series that are not are left out",
            labels=labels,
        )
        for series in self._snapshot.series:
            values = [series.exchange, series.symbol, series.timeframe]
            if series.lag_seconds is not None:
                lag.add_metric(values, series.lag_seconds)
            if series.stale:
                stale.add_metric(values, 1.0)
        yield lag
        yield stale
        yield GaugeMetricFamily(
            _name("series"), "Series collected: timeframes of enabled configs", value=len(self._snapshot.series)
        )
        yield GaugeMetricFamily(
            _name("stale_series"), "Series that are stale", value=sum(s.stale for s in self._snapshot.series)
        )

    def _exchanges(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            _name("exchange_state"),
            "1 for the exchange's current state (ok, paused by a rate limit, banned), 0 for the others",
            labels=["exchange", "state"],
        )
        since = GaugeMetricFamily(
            _name("exchange_pause_since_timestamp_seconds"),
            "When the exchange's current pause or ban began (Unix time; paused or banned exchanges only)",
            labels=["exchange"],
        )
        until = GaugeMetricFamily(
            _name("exchange_pause_until_timestamp_seconds"),
            "When the exchange's current pause or ban ends (Unix time; paused or banned exchanges only)",
            labels=["exchange"],
        )
        counters = {
            "requests": CounterMetricFamily(
                _name("exchange_requests"), "Requests to the exchange (answered or not)", labels=["exchange"]
            ),
            "errors": CounterMetricFamily(
                _name("exchange_errors"),
                "Requests without a usable answer: none, 4xx/5xx, or a body that cannot be read",
                labels=["exchange"],
            ),
            "rate_limits": CounterMetricFamily(
                _name("exchange_rate_limits"), "Rate-limit answers (429, or said in the body)", labels=["exchange"]
            ),
            "bans": CounterMetricFamily(_name("exchange_bans"), "Ban answers (418)", labels=["exchange"]),
        }
        for exchange in self._snapshot.exchanges:
            for name in EXCHANGE_STATES:
                state.add_metric([exchange.exchange, name], float(exchange.state == name))
            if exchange.since is not None and exchange.until is not None:
                since.add_metric([exchange.exchange], exchange.since.timestamp())
                until.add_metric([exchange.exchange], exchange.until.timestamp())
            for name, family in counters.items():
                family.add_metric([exchange.exchange], getattr(exchange, name))
        yield state
        yield since
        yield until
        yield from counters.values()

    def _scheduler(self) -> Iterator[Metric]:
        scheduler = self._snapshot.scheduler
        if scheduler.heartbeat_age_seconds is not None:
            yield GaugeMetricFamily(
                _name("scheduler_heartbeat_age_seconds"),
                "Seconds since the most recent heartbeat of any scheduler (absent until one beats)",
                value=scheduler.heartbeat_age_seconds,
            )
        yield GaugeMetricFamily(
            _name("schedulers_alive"),
            "Processes scheduling runs whose heartbeat lease runs",
            value=scheduler.schedulers_alive,
        )
        yield GaugeMetricFamily(_name("runs_in_progress"), "Runs still running", value=scheduler.runs_in_progress)
        configs = GaugeMetricFamily(_name("configs"), "Data-collection configs", labels=["enabled"])
        configs.add_metric(["true"], self._snapshot.configs.enabled_configs)
        configs.add_metric(["false"], self._snapshot.configs.disabled_configs)
        yield configs
        failures = GaugeMetricFamily(
            _name("config_consecutive_failures"),
            f"Latest finished runs of an enabled config that failed in a row (counted up to "
            f"{CONSECUTIVE_FAILURES_COUNTED}; only configs whose latest run failed)",
            labels=["config_id", "exchange", "symbol"],
        )
        for config in self._snapshot.consecutive_failures:
            if config.failures:
                failures.add_metric([str(config.config_id), config.exchange, config.symbol], config.failures)
        yield failures


def _bucket_label(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it (``0.5``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _sum_by_exchange(totals: Iterable[RunTotals], field: str, job_type: str | None = None) -> dict[str, int]:
    sums: dict[str, int] = {}
    for row in totals:
        if job_type is None or row.job_type == job_type:
            sums[row.exchange] = sums.get(row.exchange, 0) + getattr(row, field)
    return sums


class PoolCollector(Collector):
    """This process's database pool: connections open, in use, and the most it opens."""

    def __init__(self, pool: Pool, *, process: str, max_size: int) -> None:
        self._pool = pool
        self._process = process
        self._max_size = max_size

    def collect(self) -> Iterator[Metric]:
        size = self._pool.get_size()
        for name, documentation, value in (
            ("db_pool_connections", "Connections this process's pool holds open", size),
            (
                "db_pool_connections_in_use",
                "Connections of this process's pool in use now",
                size - self._pool.get_idle_size(),
            ),
            ("db_pool_max_connections", "The most connections this process's pool opens", self._max_size),
        ):
            family = GaugeMetricFamily(_name(name), documentation, labels=["process"])
            family.add_metric([self._process], value)
            yield family


class _Registered(Collector):
    """The metrics of a registry (the plugin's HTTP metrics and the process' own, in the default one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class MetricsController(PrometheusController):
    """The plugin's controller, with the whole-system values read from PostgreSQL first."""

    path = METRICS_PATH
    guards = [reads_metrics]

    @get(operation_id="readMetrics", include_in_schema=False)
    async def get(self, request: Request[Any, Any, Any], pool: PoolDependency) -> Response[bytes]:
        """Every metric in the Prometheus text format."""
        settings: Settings = request.app.state.settings
        snapshot = await read_system_snapshot(pool, settings=settings)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Registered(REGISTRY))
        registry.register(SystemCollector(snapshot))
        registry.register(PoolCollector(pool, process=process_identity(), max_size=settings.database_pool_max_size))
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
