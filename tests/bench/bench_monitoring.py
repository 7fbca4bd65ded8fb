"""/status with freshness, and a Prometheus scrape of /metrics, at 1,000 series and a million runs.

A throwaway database (created and dropped here) gets 1,000 enabled configs of one 1m timeframe
each, every series with a year of monthly coverage summary (12 ``candle_counts`` rows, the newest
candle a minute ago), 1,000,000 execution logs over 30 days with their run totals, and request
totals and a pause for a few exchanges. The app runs as in production (``python -m backend
serve``, uvicorn, one process) in a subprocess; one client asks, one request at a time.

- ``/status`` computed: before each request a write bumps the data version, so that every answer
  is computed (configs, the last runs, the day's stats, the scheduler and the freshness of every
  series); requests answered from the cache (the notification had not arrived) do not count.
  Goal: p95 under 25 ms.
- ``/metrics``: every scrape reads everything from PostgreSQL (nothing is cached). Goal: p95 under 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.runs.totals import COUNT_ENDED_RUNS
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

SERIES = 1_000
LOGS = 1_000_000
DAYS = 30
SAMPLES = 300
WARM_UP = 30
STATUS_GOAL_MS = 25
METRICS_GOAL_MS = 50
ADMIN_PATH = "/api/v1/admin/data-collection"
# what any write of a run does to the tag of every polled answer
BUMP_DATA_VERSION = "SELECT bump_data_version('job_execution_logs')"

SEED_CONFIGS = f"""
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled, schedule_anchor_at)
SELECT 'C' || n || '/USDT', CASE WHEN n % 4 = 0 THEN 'okx' ELSE 'binance' END, '{{1m}}', 1, true,
       now() - interval '{DAYS} days'
FROM generate_series(1, {SERIES}) AS n
"""
SEED_SERIES = """
INSERT INTO candle_series (id, exchange, symbol, timeframe)
SELECT 100000000 + id, exchange, symbol, '1m' FROM data_collection_configs
"""
# a year of monthly periods per series, the newest candle a minute ago (1 in 50 series an hour behind: stale)
SEED_COUNTS = """
INSERT INTO candle_counts (series_id, period_start, candles, first_minute, last_minute)
SELECT s.id, candle_minute(month), 43000, candle_minute(month),
       least(candle_minute(month + interval '1 month') - 1,
             candle_minute(date_trunc('minute', now() AT TIME ZONE 'UTC'))
                 - CASE WHEN s.id % 50 = 0 THEN 60 ELSE 2 END)
FROM candle_series AS s
CROSS JOIN generate_series(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '11 months',
                           date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS month
"""
# one run every ~2.6 s over 30 days: 90 % success, 5 % failed, 5 % partial; triggers are skipped
# for the bulk load, then the per-minute counts are recounted
SEED_LOGS = f"""
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, scheduled_for, finished_at,
     duration_seconds, records_collected, error_message, error_type, metadata)
SELECT 'collect_data_' || c, 'data_collection', c, 'C' || c || '/USDT',
       CASE WHEN c % 4 = 0 THEN 'okx' ELSE 'binance' END, status, 'schedule',
       started_at, started_at - (n % 1500) * interval '1 millisecond',
       started_at + duration * interval '1 second', duration,
       CASE WHEN status = 'failed' THEN 0 ELSE 1 END,
       CASE WHEN status <> 'success' THEN 'fetch_ohlcv 1m: RequestTimeout, retries exhausted' END,
       CASE WHEN status <> 'success' THEN 'RequestTimeout' END,
       '{{"timeframes_collected": 1, "timeframes_failed": 0, "timeframes": ["1m"]}}'::jsonb
FROM (
    SELECT n, n % {SERIES} + 1 AS c,
           now() - n * (interval '{DAYS} days' / {LOGS}) AS started_at,
           0.05 + (n::bigint * 7919 % 1000) / 1000.0 AS duration,
           CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 20 = 1 THEN 'partial' ELSE 'success' END AS status
    FROM generate_series(1, {LOGS}) AS n
) AS runs
"""
# the totals the statements that ended those runs would have kept
SEED_TOTALS = """
WITH ended AS (
    SELECT true AS first_end, job_type, exchange, trigger, status, duration_seconds,
           extract(epoch FROM started_at - scheduled_for)::float8 AS lateness_seconds, missed_slots,
           records_collected AS candles_stored, 0 AS candles_rejected, 0 AS candles_revised
    FROM job_execution_logs
), {count_ended_runs}
SELECT 1
"""
SEED_EXCHANGES = """
INSERT INTO exchange_request_totals VALUES ('binance', 2100000, 310, 12, 1), ('okx', 700000, 95, 3, 0);
INSERT INTO exchange_pauses VALUES ('okx', 'worker.1:7', 'paused', now() - interval '20 seconds',
                                    now() + interval '40 seconds', 'rate limited (429), Retry-After 60 s');
INSERT INTO scheduler_heartbeats (scheduler_id, backend, expires_at)
VALUES ('web.1:42', 'inprocess', now() + interval '1 day');
"""


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.execute(SEED_CONFIGS)
        await conn.execute(SEED_SERIES)
        await conn.execute(SEED_COUNTS)
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(SEED_LOGS)
        await conn.execute("SET session_replication_role = origin")
        await conn.execute("SELECT recount_runs_per_minute()")
        await conn.execute(SEED_TOTALS.format(count_ended_runs=COUNT_ENDED_RUNS))
        await conn.execute(SEED_EXCHANGES)
        await conn.execute("SELECT bump_data_version('job_execution_logs')")
        await conn.execute("VACUUM ANALYZE")
        print(f"seed: {SERIES:,} series, {LOGS:,} logs over {DAYS} days in {time.perf_counter() - started:.1f} s")
        await users.create_user(conn, email=EMAIL, password_hash=await hash_password(PASSWORD), role="viewer")
    finally:
        await conn.close()


def _figures(times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[-1]
    return f"p50 {statistics.median(times):6.2f} ms, p95 {p95:6.2f} ms, max {max(times):6.2f} ms"


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


async def _timed(request: Callable[[], Awaitable[float | None]], samples: int) -> list[float]:
    """``samples`` times (ms) of the requests that count (``request`` answers None for one that does not),
    after a warm-up."""
    times: list[float] = []
    while len(times) < WARM_UP + samples:
        elapsed = await request()
        if elapsed is not None:
            times.append(elapsed)
    return times[WARM_UP:]


async def _measure(base: str, token: str, url: str) -> tuple[list[float], list[float], int]:
    headers = {"Authorization": f"Bearer {token}"}
    writer = await asyncpg.connect(url)
    seen: set[str] = set()
    size = 0
    try:
        async with aiohttp.ClientSession(headers=headers) as session:

            async def status() -> float | None:
                await writer.execute(BUMP_DATA_VERSION)
                await asyncio.sleep(0.005)  # the notification reaches the server
                started = time.perf_counter()
                async with session.get(f"{base}{ADMIN_PATH}/status") as response:
                    await response.read()
                    etag = response.headers["ETag"]
                elapsed = (time.perf_counter() - started) * 1000
                if etag in seen:  # answered from the cache: not computed
                    return None
                seen.add(etag)
                return elapsed

            async def scrape() -> float | None:
                nonlocal size
                started = time.perf_counter()
                async with session.get(f"{base}/metrics") as response:
                    body = await response.read()
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status == 200, body[:200]
                size = len(body)
                return elapsed

            status_times = await _timed(status, SAMPLES)
            metrics_times = await _timed(scrape, SAMPLES)
    finally:
        await writer.close()
    return status_times, metrics_times, size


async def main() -> None:
    async with throwaway_database("altar_bench_monitoring") as url:
        await _seed(url)
        process, base = await serve(url)
        try:
            token = await login(base)
            status_times, metrics_times, size = await _measure(base, token, url)
        finally:
            process.terminate()
            process.wait(timeout=30)
    status_p95 = statistics.quantiles(status_times, n=20)[-1]
    metrics_p95 = statistics.quantiles(metrics_times, n=20)[-1]
    print(f"one client, {SAMPLES} requests each after {WARM_UP} of warm-up ({_load_average()}):")
    print(f"  /status computed (freshness of {SERIES:,} series included): {_figures(status_times)}")
    print(f"  /metrics scrape ({size / 1000:.0f} kB):                      {_figures(metrics_times)}")
    print("goals:")
    print(f"  /status p95 {status_p95:.1f} ms at {SERIES:,} series and {LOGS:,} logs (< {STATUS_GOAL_MS} ms)")
    print(f"  /metrics p95 {metrics_p95:.1f} ms at {SERIES:,} series and {LOGS:,} logs (< {METRICS_GOAL_MS} ms)")
