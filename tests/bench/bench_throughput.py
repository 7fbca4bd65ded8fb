"""Throughput: many one-minute series in a steady state, a burst of configs due on one second, and
arq workers scaling out. The real collector against the fake Binance, candles stored.

- **Steady state, one web process.** ``CONFIGS`` configs (1,000; ``--configs 10000`` for ten
  thousand) of one 1m series, run every minute, their slots spread over the minute; one in-process
  scheduler (``MAX_CONCURRENT_JOBS`` at its default) in this process, with the fake Binance (its
  CPU counts here too: pessimistic). ccxt's rate limiter is on while the configs fit Binance's
  budget from one address (3,000 one-minute series), off beyond. The first minute stores a few
  minutes of history per series; the next ``STEADY_MINUTES`` are measured: lateness, missed slots,
  runs that did not succeed, and CPU per run (this process and PostgreSQL's pool connections).
- **A burst in one web process.** 1,000 configs created due on the same second (their first runs
  create their series), then the same configs' slots moved onto one second of the next minute (a
  run each: one new candle, as after a deploy or an outage); one in-process scheduler, ccxt's
  limiter off: as 1,000 configs spread over exchanges whose budgets all hold them would run.
- **arq, one worker then two** (``python -m backend worker`` processes, defaults: tick 2 s,
  ``MAX_CONCURRENT_JOBS`` at its default; ccxt's limiter off, so that the workers' own capacity shows): 1,000
  configs spread over the minute, their second minute measured (lateness, skipped slots; the first
  warms the workers up), then 1,000 configs due on the same second
  (how fast the workers drain them: runs a second, and two workers against one).

    python -m tests.bench.bench_throughput [--configs 10000] [--burst-only] [--one-worker] [--in-process-burst]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from redis.asyncio import Redis

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.db.pool import Pool, create_pool
from backend.scheduling.budget import series_within_budget
from backend.scheduling.scheduler import InProcessScheduler
from backend.settings import Settings
from tests.bench.bench_run_cost import cpu_seconds, create_partitions_ahead
from tests.bench.throwaway import throwaway_database
from tests.collection.fake_binance import FakeBinance, running_fake_binance
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = 1000
STEADY_MINUTES = 2
ARQ_CONFIGS = 1000
FIRST_SLOT_IN_SECONDS = 5
WARM_UP_RUNS = 50  # --burst-only: runs before the burst (each worker loads the markets)
HISTORY_MINUTES = 3
DRAIN_DEADLINE_SECONDS = 120
POOL_SIZE = 10
DATABASE_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

INSERT_CONFIGS = """
INSERT INTO data_collection_configs
    (symbol, exchange, timeframes, interval_minutes, schedule_anchor_at, next_run_at, backfill_days)
SELECT $4 || n || '/USDT', 'binance', ARRAY['1m'], 1, slot, slot, 1
FROM generate_series(0, $1 - 1) AS n,
     LATERAL (SELECT $2::timestamptz + make_interval(secs => n * $3::double precision) AS slot) AS first
"""
# scheduled runs of slots in [$1, $2): how many ended, and how
FIGURES = """
SELECT count(*) FILTER (WHERE status <> 'running') AS ended,
       count(*) FILTER (WHERE status NOT IN ('success', 'running')) AS not_successful,
       coalesce(sum(missed_slots), 0) AS missed_slots,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - scheduled_for)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - scheduled_for)) AS p99,
       max(extract(epoch FROM started_at - scheduled_for)) AS max,
       extract(epoch FROM max(finished_at) - min(scheduled_for))::float8 AS seconds
FROM job_execution_logs WHERE trigger = 'schedule' AND scheduled_for >= $1 AND scheduled_for < $2
"""
ENDED = """
SELECT count(*) FROM job_execution_logs
WHERE trigger = 'schedule' AND status <> 'running' AND scheduled_for >= $1 AND scheduled_for < $2
"""
# configs whose slots in [$1, $2) all ran or were counted as missed
DUPLICATES = """
SELECT count(*) FROM (
    SELECT 1 FROM job_execution_logs WHERE trigger = 'schedule' GROUP BY config_id, scheduled_for HAVING count(*) > 1
) AS twice
"""
# configs whose symbol is LIKE $2: every slot on the second $1 from now on (a minute's configs
# whose slots all fall on the same second, as configs created at :00 have)
ALIGN_SLOTS = """
UPDATE data_collection_configs SET schedule_anchor_at = $1, next_run_at = $1 WHERE symbol LIKE $2
"""
RESET = "TRUNCATE data_collection_configs, job_execution_logs, scheduler_heartbeats CASCADE"


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


async def _wait_ended(pool: Pool, since: datetime, until: datetime, expected: int) -> int:
    deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
    while (ended := await pool.fetchval(ENDED, since, until)) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return int(ended)


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def _figures_line(row: Any, expected: int) -> str:
    return (
        f"{row['ended']} of {expected} runs ended, lateness p50 {_ms(row['p50'])} / p99 {_ms(row['p99'])} / "
        f"max {_ms(row['max'])}, {row['missed_slots']} missed slots, {row['not_successful']} not successful"
    )


async def _database_cpu(pool: Pool) -> dict[int, float]:
    """The CPU so far of each PostgreSQL server process connected to the benchmark's database."""
    pids = [row["pid"] for row in await pool.fetch(DATABASE_BACKENDS)]
    seconds = {pid: cpu_seconds([pid]) for pid in pids}
    return {pid: value for pid, value in seconds.items() if value is not None}


async def steady_state(url: str, fake: FakeBinance, configs: int) -> None:
    limiter = configs <= 0.9 * (series_within_budget("binance", timeframe="1m", interval_minutes=1) or 0)
    overrides = fake.exchange_overrides() if limiter else _without_limiter(fake)
    first = (datetime.now(UTC) + timedelta(seconds=FIRST_SLOT_IN_SECONDS)).replace(microsecond=0)
    measured_from, measured_to = first + timedelta(minutes=1), first + timedelta(minutes=1 + STEADY_MINUTES)
    async with _in_process_scheduler(url, overrides) as (pool, scheduler):
        print(
            f"steady state: {configs:,} configs of one 1m series every minute, spread over the minute; one "
            f"in-process scheduler, MAX_CONCURRENT_JOBS={Settings().max_concurrent_jobs}; ccxt's limiter "
            f"{'on (within Binance budget)' if limiter else 'off (beyond one address budget of Binance)'}"
        )
        await pool.execute(INSERT_CONFIGS, configs, first, 60 / configs, "S")
        await scheduler.start()
        await _sleep_until(measured_from)
        server, cpu = await _database_cpu(pool), time.process_time()
        await _sleep_until(measured_to)
        cpu, server_after = time.process_time() - cpu, await _database_cpu(pool)
        ended = await _wait_ended(pool, measured_from, measured_to, configs * STEADY_MINUTES)
        row = await pool.fetchrow(FIGURES, measured_from, measured_to)
        duplicates = await pool.fetchval(DUPLICATES)
    assert row is not None
    runs = max(1, ended)
    closed = server.keys() - server_after.keys()
    database = sum(seconds - server.get(pid, 0.0) for pid, seconds in server_after.items())
    database_text = f"{1000 * database / runs:.2f} ms" + (
        f" ({len(closed)} connections closed meanwhile: their CPU is not counted)" if closed else ""
    )
    print(
        f"  {STEADY_MINUTES} minutes measured: {_figures_line(row, configs * STEADY_MINUTES)}, {duplicates} duplicates"
    )
    print(
        f"  CPU per run: this process (scheduler, collector, ccxt, fake Binance) {1000 * cpu / runs:.2f} ms, "
        f"PostgreSQL (every connection to the database) {database_text}"
    )
    print(
        f"  goal: p99 lateness {_ms(row['p99'])} (< 1 s), {row['missed_slots']} missed slots (0), "
        f"{row['not_successful']} runs not successful (0); {_load()}"
    )


async def in_process_burst(url: str, fake: FakeBinance) -> None:
    """``ARQ_CONFIGS`` new configs due on one second, then their slots on one second of the next
    minute (one new candle each), through one in-process scheduler, ccxt's limiter off."""
    async with _in_process_scheduler(url, _without_limiter(fake)) as (pool, scheduler):
        print(
            f"a burst in one web process: {ARQ_CONFIGS:,} configs due on the same second, one in-process scheduler "
            f"(MAX_CONCURRENT_JOBS {Settings().max_concurrent_jobs}), ccxt's limiter off"
        )
        await scheduler.start()
        created = await _burst(pool, [], INSERT_CONFIGS, ARQ_CONFIGS, 0, "BURST0X")
        _print_burst("new configs (their first runs: each creates its series)", created)
        again = (created.at + timedelta(minutes=1)).replace(second=FIRST_SLOT_IN_SECONDS)
        aligned = await _burst(pool, [], ALIGN_SLOTS, "BURST0X%", at=again)
        _print_burst("the same configs, their slots on one second of the next minute (one new candle each)", aligned)


@asynccontextmanager
async def _in_process_scheduler(url: str, overrides: dict[str, Any]) -> AsyncIterator[tuple[Pool, InProcessScheduler]]:
    """A pool and an in-process scheduler running the real collector with these exchange overrides
    (the scheduler is started by the caller); at the end, stopped, and the database emptied."""
    settings = Settings(app_env="test", database_url=url, exchange_overrides=overrides)
    pool = await create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE)
    exchanges = ExchangeClients(settings.exchange_overrides)
    try:
        await exchanges.get("binance").ensure_markets()
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings)
        scheduler = InProcessScheduler(pool, settings=settings, run_job=collector.execute_run)
        try:
            yield pool, scheduler
        finally:
            await scheduler.stop()
    finally:
        await exchanges.close()
        await pool.execute(RESET)
        await pool.close()


def _without_limiter(fake: FakeBinance) -> dict[str, Any]:
    overrides = fake.exchange_overrides()
    overrides["binance"]["enableRateLimit"] = False
    return overrides


def _start_workers(url: str, fake: FakeBinance, queue: str, count: int) -> list[subprocess.Popen[bytes]]:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "EXCHANGE_OVERRIDES": json.dumps(_without_limiter(fake)),
        "LOG_LEVEL": "WARNING",
        "SCHEDULER_BACKEND": "arq",
        "REDIS_URL": REDIS_URL,
        "ARQ_QUEUE_NAME": queue,
    }
    return [
        subprocess.Popen([sys.executable, "-m", "backend", "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


async def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            await asyncio.to_thread(worker.wait, timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def _workers_alive(pool: Pool, count: int) -> None:
    sql = "SELECT count(*) FROM scheduler_heartbeats WHERE backend = 'arq' AND expires_at > now()"
    while await pool.fetchval(sql) < count:
        await asyncio.sleep(0.2)


async def arq_workers(url: str, fake: FakeBinance, count: int, *, burst_only: bool = False) -> float:
    """Spread, then the spread configs' slots moved onto one second, then a burst of new configs, with
    ``count`` workers (``burst_only``: a few warm-up runs, then the burst of new configs); the new
    configs' runs a second."""
    queue = f"bench:{uuid.uuid4().hex[:8]}"
    pool = await create_pool(url, min_size=1, max_size=2)
    workers = _start_workers(url, fake, queue, count)
    spread = aligned = None
    try:
        await _workers_alive(pool, count)
        first = (datetime.now(UTC) + timedelta(seconds=FIRST_SLOT_IN_SECONDS)).replace(microsecond=0)
        if burst_only:  # each worker loads the markets on its first runs
            await pool.execute(INSERT_CONFIGS, WARM_UP_RUNS, first, 0, f"WARM{count}X")
            await _wait_ended(pool, first, first + timedelta(seconds=1), WARM_UP_RUNS)
        else:
            # the first minute warms up (each worker loads the markets, each series is created): the second is measured
            measured, minute = first + timedelta(minutes=1), first + timedelta(minutes=2)
            await pool.execute(INSERT_CONFIGS, ARQ_CONFIGS, first, 60 / ARQ_CONFIGS, f"ARQ{count}X")
            await _sleep_until(minute)
            await _wait_ended(pool, measured, minute, ARQ_CONFIGS)  # runs claimed ahead: disabled, they would not run
            spread = await pool.fetchrow(FIGURES, measured, minute)
            aligned = await _burst(pool, workers, ALIGN_SLOTS, f"ARQ{count}X%")
        await pool.execute("UPDATE data_collection_configs SET enabled = false")
        burst = await _burst(pool, workers, INSERT_CONFIGS, ARQ_CONFIGS, 0, f"BURST{count}X")
        await pool.execute("UPDATE data_collection_configs SET enabled = false")
        duplicates = await pool.fetchval(DUPLICATES)
    finally:
        await _stop_workers(workers)
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=f"*{queue}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    await pool.execute(RESET)
    await pool.close()
    places = Settings().max_concurrent_jobs
    print(f"arq, {count} worker{'s' if count > 1 else ''} (tick 2 s, MAX_CONCURRENT_JOBS {places} each, limiter off):")
    if spread is not None:
        print(
            f"  {ARQ_CONFIGS:,} configs spread over a minute, its second minute: "
            f"{_figures_line(spread, ARQ_CONFIGS)}, {duplicates} duplicates"
        )
        print(f"    goal: p99 {_ms(spread['p99'])} (< 1 s), {spread['missed_slots']} skipped slots (0); {_load()}")
    if aligned is not None:
        _print_burst(
            f"the same {ARQ_CONFIGS:,} configs, their slots moved onto one second (a run each: one new candle)", aligned
        )
    return _print_burst(f"{ARQ_CONFIGS:,} new configs due on the same second (their first runs)", burst)


class Burst(NamedTuple):
    at: datetime  # the second the slots fell on
    figures: Any
    cpu: dict[str, float]
    duplicates: int


async def _burst(
    pool: Pool, workers: list[subprocess.Popen[bytes]], statement: str, *arguments: Any, at: datetime | None = None
) -> Burst:
    """Make ``ARQ_CONFIGS`` slots due on one second, ``at`` or a few seconds ahead (``statement`` with
    that second first, then ``arguments``) and wait for their runs: figures, CPU by process, duplicates
    so far."""
    burst_at = at or (datetime.now(UTC) + timedelta(seconds=FIRST_SLOT_IN_SECONDS)).replace(microsecond=0)
    cpu_before = await _cpu_by_process(pool, workers)
    if statement is INSERT_CONFIGS:
        await pool.execute(statement, arguments[0], burst_at, *arguments[1:])
    else:
        await pool.execute(statement, burst_at, *arguments)
    await _wait_ended(pool, burst_at, burst_at + timedelta(seconds=1), ARQ_CONFIGS)
    cpu_used = _cpu_since(cpu_before, await _cpu_by_process(pool, workers))
    figures = await pool.fetchrow(FIGURES, burst_at, burst_at + timedelta(seconds=1))
    return Burst(burst_at, figures, cpu_used, await pool.fetchval(DUPLICATES))


def _print_burst(title: str, burst: Burst) -> float:
    """Print a burst's figures; its runs a second."""
    figures = burst.figures
    rate = figures["ended"] / figures["seconds"] if figures["seconds"] else 0.0
    print(
        f"  {title}: {_figures_line(figures, ARQ_CONFIGS)}; {rate:.0f} runs/s from the slot to the last run's end "
        f"({figures['seconds']:.1f} s), {burst.duplicates} duplicates"
    )
    print(f"    goal: p99 {_ms(figures['p99'])} (< 3 s); {_load()}")
    runs = max(1, figures["ended"])
    print(
        "    CPU per run: " + ", ".join(f"{name} {1000 * seconds / runs:.2f} ms" for name, seconds in burst.cpu.items())
    )
    return rate


async def _cpu_by_process(pool: Pool, workers: list[subprocess.Popen[bytes]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each worker, of this process (the fake Binance, and the scheduler and
    collector when no worker runs them) and of the database's server processes (those of this
    benchmark's database; a connection opened later counts from 0)."""
    database = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    this_process = "this process (fake Binance)" if workers else "this process (scheduler, collector, fake Binance)"
    groups = {
        **{f"worker {n + 1}": [worker.pid] for n, worker in enumerate(workers)},
        "PostgreSQL": [row["pid"] for row in database],
    }
    seconds = {name: {pid: cpu_seconds([pid]) for pid in pids} for name, pids in groups.items()}
    return {
        name: {pid: value for pid, value in values.items() if value is not None} for name, values in seconds.items()
    } | {this_process: {os.getpid(): time.process_time()}}


def _cpu_since(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {
        name: sum(value - before.get(name, {}).get(pid, 0.0) for pid, value in values.items())
        for name, values in after.items()
    }


async def bench_throughput(
    configs: int, *, burst_only: bool = False, one_worker: bool = False, in_process_only: bool = False
) -> None:
    print(f"{_load()}; 2 cores shared with PostgreSQL, Redis and whatever else runs")
    symbols = [
        f"{prefix}{n}/USDT"
        for prefix in ("S", "BURST0X", "ARQ1X", "WARM1X", "BURST1X", "ARQ2X", "WARM2X", "BURST2X")
        for n in range(max(configs, 1000))
    ]
    history_start_ms = int((time.time() - HISTORY_MINUTES * 60) * 1000)
    async with (
        throwaway_database("altar_bench") as url,
        running_fake_binance(symbols, history_start_ms=history_start_ms) as fake,
    ):
        await create_partitions_ahead(url)
        if not (burst_only or one_worker):
            if not in_process_only:
                await steady_state(url, fake, configs)
            await in_process_burst(url, fake)
            if in_process_only:
                return
        one = await arq_workers(url, fake, 1, burst_only=burst_only)
        if one_worker:
            return
        two = await arq_workers(url, fake, 2, burst_only=burst_only)
    ratio = two / one if one else 0.0
    print(f"arq scale-out: two workers drain a burst at {ratio:.2f}x the rate of one (goal >= 1.8x); {_load()}")


async def main(configs: int = CONFIGS) -> None:
    await bench_throughput(configs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=CONFIGS, help="configs in the steady state (default 1000)")
    parser.add_argument("--burst-only", action="store_true", help="arq's burst alone, after a few warm-up runs")
    parser.add_argument("--one-worker", action="store_true", help="arq with one worker alone (to compare two commits)")
    parser.add_argument("--in-process-burst", action="store_true", help="the burst in one web process alone (2 min)")
    arguments = parser.parse_args()
    asyncio.run(
        bench_throughput(
            arguments.configs,
            burst_only=arguments.burst_only,
            one_worker=arguments.one_worker,
            in_process_only=arguments.in_process_burst,
        )
    )
