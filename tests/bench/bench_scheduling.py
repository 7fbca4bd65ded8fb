"""Scheduling benchmark: 1,000 enabled configs (one 1m series each) due every minute, two in-process
schedulers on one database (as two web dynos), the real claim path and the real collector: ccxt
against the fake Binance of ``tests/collection/fake_binance.py``, candles stored.

The fake serves history from a few minutes before the benchmark starts, so a config's first run
fetches a few candles (as a config that is up to date would) rather than days of backfill. Both
schedulers, their collectors and the fake share this process (pessimistic: in production each
dyno has its own).

Two loads: every config on the same second (the worst burst), then the 1,000 slots spread over the
minute (configs created at different times). For each: lateness of each run against its slot
(``started_at - scheduled_for``: p50, p99, max), runs per second, duplicate runs of a slot (must be
0), the share each scheduler took; and the CPU both schedulers spend over the idle rest of a minute.
Takes about three minutes: real minutes. Goals: p99 lateness under 10 ms spread over the minute,
0 duplicates, idle CPU under 1 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.db.pool import Pool, create_pool
from backend.scheduling.scheduler import InProcessScheduler
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database
from tests.collection.fake_binance import running_fake_binance

CONFIGS = 1000
LOADS = {"B": "all on the same second (worst burst)", "S": "spread over the minute"}
FIRST_SLOT_IN_SECONDS = 5
HISTORY_MINUTES = 3  # what the fake serves before the benchmark starts: a first run fetches a few candles
RUNS_DEADLINE_SECONDS = 90  # report what finished by then rather than wait forever
P99_GOAL_MS = 10.0
PROBE_SECONDS = 0.005

# config n's first slot is $2 + n * $3 seconds (0: all on the same second)
INSERT_CONFIGS = """
INSERT INTO data_collection_configs
    (symbol, exchange, timeframes, interval_minutes, schedule_anchor_at, next_run_at)
SELECT $4 || n || '/USDT', 'binance', ARRAY['1m'], 1, slot, slot
FROM generate_series(0, $1 - 1) AS n,
     LATERAL (SELECT $2::timestamptz + make_interval(secs => n * $3::double precision) AS slot) AS first
"""
FINISHED_SINCE = """
SELECT count(*) FROM job_execution_logs WHERE trigger = 'schedule' AND status <> 'running' AND scheduled_for >= $1
"""
FIGURES = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lateness) AS p99,
       max(lateness) AS max, count(*) AS runs,
       extract(epoch FROM max(finished_at) - min(scheduled_for))::float8 AS seconds
FROM (
    SELECT extract(epoch FROM started_at - scheduled_for) AS lateness, scheduled_for, finished_at
    FROM job_execution_logs WHERE trigger = 'schedule' AND scheduled_for >= $1
) AS runs
"""
FAILED_SINCE = """
SELECT count(*) FROM job_execution_logs
WHERE trigger = 'schedule' AND status NOT IN ('success', 'running') AND scheduled_for >= $1
"""
FAILURES_SINCE = """
SELECT coalesce(error_type, status) AS error, count(*) AS runs, min(error_message) AS example
FROM job_execution_logs WHERE trigger = 'schedule' AND status NOT IN ('success', 'running') AND scheduled_for >= $1
GROUP BY 1 ORDER BY 2 DESC
"""
CANDLES_SINCE = "SELECT coalesce(sum(records_collected), 0) FROM job_execution_logs WHERE scheduled_for >= $1"
DUPLICATES = """
SELECT count(*) FROM (
    SELECT 1 FROM job_execution_logs WHERE trigger = 'schedule' GROUP BY config_id, scheduled_for HAVING count(*) > 1
) AS twice
"""
DISABLE_ALL = "UPDATE data_collection_configs SET enabled = false"


class CountingCollector:
    """The real collector of one scheduler, counting the runs it performs."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.runs = 0

    async def __call__(self, run_id: int) -> None:
        self.runs += 1
        await self.collector.execute_run(run_id)


async def _wait_for_runs(pool: Pool, since: datetime) -> int:
    """Wait until every config ran once since ``since`` (or the deadline passed); how many did."""
    deadline = time.monotonic() + RUNS_DEADLINE_SECONDS
    while (finished := await pool.fetchval(FINISHED_SINCE, since)) < CONFIGS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return int(finished)


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


class Responsiveness:
    """How late this process's event loop wakes a task that sleeps a few milliseconds, and how long a
    ``SELECT 1`` takes, sampled during a load: the floor of any lateness the schedulers (which share
    the loop with the collectors and the fake, and the machine with PostgreSQL) can reach."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lags_ms: list[float] = []
        self.round_trips_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                asked = loop.time() + PROBE_SECONDS
                await asyncio.sleep(PROBE_SECONDS)
                self.lags_ms.append((loop.time() - asked) * 1000)
                started = loop.time()
                await conn.fetchval("SELECT 1")
                self.round_trips_ms.append((loop.time() - started) * 1000)
        finally:
            await conn.close()

    async def __aenter__(self) -> Responsiveness:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def summary(self) -> str:
        def p50_p99(values: list[float]) -> str:
            ordered = sorted(values)
            return f"p50 {ordered[len(ordered) // 2]:.1f} ms, p99 {ordered[int(len(ordered) * 0.99)]:.1f} ms"

        return (
            f"meanwhile: event-loop lag of a {PROBE_SECONDS * 1000:.0f} ms sleep {p50_p99(self.lags_ms)}; "
            f"SELECT 1 {p50_p99(self.round_trips_ms)}"
        )


async def _one_load(
    url: str, pool: Pool, jobs: list[CountingCollector], *, name: str, spread_seconds: float
) -> tuple[datetime, float]:
    """Insert the configs, wait for one run of each, print the figures; the first slot and the p99 (ms)."""
    for job in jobs:
        job.runs = 0
    first_slot = (datetime.now(UTC) + timedelta(seconds=FIRST_SLOT_IN_SECONDS)).replace(microsecond=0)
    await pool.execute(INSERT_CONFIGS, CONFIGS, first_slot, spread_seconds / CONFIGS, name)
    async with Responsiveness(url) as probe:
        finished = await _wait_for_runs(pool, first_slot)
    figures = await pool.fetchrow(FIGURES, first_slot)
    assert figures is not None
    failed = await pool.fetchval(FAILED_SINCE, first_slot)
    if finished < CONFIGS:
        print(f"  only {finished} of {CONFIGS} runs finished within {RUNS_DEADLINE_SECONDS} s")
    if failed:
        print(f"  {failed} of {finished} finished runs did not succeed:")
        for row in await pool.fetch(FAILURES_SINCE, first_slot):
            print(f"    {row['runs']} x {row['error']}: {row['example']}")
    stored = await pool.fetchval(CANDLES_SINCE, first_slot)
    print(
        f"  lateness over {figures['runs']} runs: p50 {figures['p50'] * 1000:.1f} ms, "
        f"p99 {figures['p99'] * 1000:.1f} ms, max {figures['max'] * 1000:.1f} ms; "
        f"{finished / figures['seconds']:.0f} runs/s from the first slot to the last run finished "
        f"({figures['seconds']:.2f} s, {stored:,} candles stored); runs per scheduler {jobs[0].runs} / {jobs[1].runs}"
    )
    print(f"  {probe.summary()}")
    return first_slot, float(figures["p99"]) * 1000


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def bench_two_schedulers(url: str) -> None:
    symbols = [f"{name}{n}/USDT" for name in LOADS for n in range(CONFIGS)]
    history_start_ms = int((time.time() - HISTORY_MINUTES * 60) * 1000)
    async with running_fake_binance(symbols, history_start_ms=history_start_ms) as fake:
        settings = Settings(app_env="test", database_url=url, exchange_overrides=fake.exchange_overrides())
        pools = [await create_pool(url, min_size=1, max_size=10) for _ in range(2)]
        clients = [ExchangeClients(settings.exchange_overrides) for _ in pools]
        for exchanges in clients:  # markets load once per process, before any slot
            await exchanges.get("binance").ensure_markets()
        jobs = [
            CountingCollector(Collector(pool=pool, exchanges=exchanges, settings=settings))
            for pool, exchanges in zip(pools, clients, strict=True)
        ]
        schedulers = [
            InProcessScheduler(pool, settings=settings, run_job=job) for pool, job in zip(pools, jobs, strict=True)
        ]
        print(
            f"{CONFIGS} configs due every minute, one 1m series each; 2 in-process schedulers on one database, "
            f"MAX_CONCURRENT_JOBS={settings.max_concurrent_jobs} each; the real collector against the fake Binance"
        )
        print(f"  {_uptime()}")
        for scheduler in schedulers:
            await scheduler.start()
        try:
            print(f"- {LOADS['B']}:")
            slot, _ = await _one_load(url, pools[0], jobs, name="B", spread_seconds=0)
            await asyncio.sleep(1)  # nothing is due until the next slot: the rest of the minute is idle
            cpu, wall = time.process_time(), time.monotonic()
            await _sleep_until(slot + timedelta(seconds=59))
            idle_cpu, idle_wall = time.process_time() - cpu, time.monotonic() - wall
            await pools[0].execute(DISABLE_ALL)
            print(f"- {LOADS['S']} (configs created at different times):")
            _, spread_p99 = await _one_load(url, pools[0], jobs, name="S", spread_seconds=60)
        finally:
            for scheduler in schedulers:
                await scheduler.stop()
            for exchanges in clients:
                await exchanges.close()
        duplicates = await pools[0].fetchval(DUPLICATES)
        for pool in pools:
            await pool.close()
    print(f"goals ({_uptime()}):")
    print(
        f"  lateness p99 spread over the minute: {spread_p99:.1f} ms (goal < {P99_GOAL_MS:.0f} ms: "
        f"{spread_p99 / P99_GOAL_MS:.2f}x the goal)"
    )
    print(f"  duplicates (runs of one config's slot beyond the first): {duplicates} (must be 0)")
    if idle_wall < 10:
        print("  idle CPU: not measured (the burst did not end within its minute)")
    else:
        print(
            f"  idle with {CONFIGS} configs scheduled: {idle_cpu:.3f} CPU s over {idle_wall:.1f} s for both "
            f"schedulers = {100 * idle_cpu / idle_wall:.3f} % of one core (goal: < 1 %)"
        )


async def main() -> None:
    async with throwaway_database("altar_bench") as url:
        await bench_two_schedulers(url)
