"""Run history at 1,000 one-minute configs, and the filtered logs page at a million logs.

Run history: a throwaway database gets 25 hours of routine runs of 1,000 one-minute configs as the
collector logs them (1.5M rows with their metadata, written by generate_series in one statement):
the most the logs ever hold at once (the last day, plus the hour the hourly job has not yet
compacted). The job's compaction then moves the 24 oldest hours into compacted_runs, as it would.
30 days = those 25 hours as full rows + 29 days compacted at the measured bytes per run. Today's
path: 30 days of full rows. Goal: under 2 GB.

Logs page: a second throwaway database gets bench_stats' million logs (5 % failed); the app runs
as in production; one client asks ``/execution-logs?status=failed&limit=100`` again and again.
Goal: p95 under 10 ms.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.db.pool import create_pool
from backend.monitoring import repository
from backend.monitoring.schemas import LogFilters
from backend.runs.history import compact_routine_runs
from tests.bench.bench_stats import SEED_CONFIGS, SEED_LOGS
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

CONFIGS = 1000
DETAIL_HOURS = 25  # the last day, and the hour not yet compacted
DAYS = 30
HISTORY_GOAL_BYTES = 2e9
PAGE_REQUESTS = 400
PAGE_GOAL_MS = 10.0
ADMIN_PATH = "/api/v1/admin/data-collection"

HISTORY_CONFIGS = f"""
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled)
SELECT 'C' || n || '/USDT', 'binance', '{{1m}}', 1, true FROM generate_series(1, {CONFIGS}) AS n
"""
# One run a minute per config, a few ms late, 20-120 ms long, one candle; the metadata the collector writes.
HISTORY_LOGS = f"""
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, scheduled_for, finished_at,
     duration_seconds, records_collected, metadata, heartbeat_at)
SELECT 'collect_data_' || c, 'data_collection', c, 'C' || c || '/USDT', 'binance', 'success', 'schedule',
       slot + lateness, slot, slot + lateness + duration * interval '1 second', duration, 1,
       jsonb_build_object(
           'timeframes_collected', 1, 'timeframes_failed', 0, 'timeframes', jsonb_build_array('1m'),
           'by_timeframe', jsonb_build_object('1m', jsonb_build_object(
               'records', 1, 'first_candle', to_char(slot - interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS+00:00'),
               'last_candle', to_char(slot - interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS+00:00'),
               'pages', 1, 'retries', 0, 'holes_repaired', 0, 'duration_seconds', duration,
               'error_type', null, 'error', null))),
       slot + lateness + duration * interval '1 second'
FROM generate_series(1, {CONFIGS}) AS c,
     generate_series(1, {DETAIL_HOURS * 60}) AS m,
     LATERAL (SELECT date_trunc('minute', $1::timestamptz) - m * interval '1 minute' AS slot,
                     ((c * 7919 + m * 104729) % 9000 + 500) * interval '1 microsecond' AS lateness,
                     0.020 + ((c * 31 + m * 17) % 100) / 1000.0 AS duration) AS run
"""
SIZES = """
SELECT pg_total_relation_size('job_execution_logs') AS logs,
       pg_total_relation_size('job_execution_minutes') AS minutes,
       (SELECT count(*) FROM job_execution_minutes) AS minute_rows,
       (SELECT coalesce(sum(pg_total_relation_size(partition_name::regclass)), 0)::bigint FROM compacted_run_partitions)
           AS compacted
"""


def _load_average() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


async def _run_history() -> None:
    async with throwaway_database("altar_bench_history") as url:
        conn = await asyncpg.connect(url)
        newest = datetime.now(UTC)
        try:
            started = time.perf_counter()
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(HISTORY_CONFIGS)
            await conn.execute(HISTORY_LOGS, newest)
            await conn.execute("SET session_replication_role = origin")
            await conn.execute("SELECT recount_runs_per_minute()")
            await conn.execute("VACUUM ANALYZE job_execution_logs, job_execution_minutes")
            runs = await conn.fetchval("SELECT count(*) FROM job_execution_logs")
            seeded = time.perf_counter() - started
            print(f"seed: {runs:,} routine runs ({CONFIGS:,} configs, {DETAIL_HOURS} h) in {seeded:.0f} s")
            full = await conn.fetchrow(SIZES)
        finally:
            await conn.close()

        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            started = time.perf_counter()
            moved = await compact_routine_runs(pool, before=newest - timedelta(hours=DETAIL_HOURS - 24))
            compacting = time.perf_counter() - started
            compacted = await pool.fetchrow(SIZES)
        finally:
            await pool.close()

        row_bytes = full["logs"] / runs
        run_bytes = compacted["compacted"] / moved
        minute_bytes = full["minutes"] / full["minute_rows"]
        runs_a_day = CONFIGS * 24 * 60
        detail = full["logs"]
        compacted_days = (DAYS - 1) * runs_a_day * run_bytes
        minutes = DAYS * 24 * 60 * minute_bytes
        total = detail + compacted_days + minutes
        today = DAYS * runs_a_day * row_bytes + minutes
        print(
            f"  a full log row: {row_bytes:.0f} bytes (heap, TOAST, indexes); a compacted run: {run_bytes:.1f} bytes; "
            f"{moved:,} runs compacted in {compacting:.0f} s ({moved / compacting:,.0f} runs/s)"
        )
        print(
            f"run history, 30 days at {CONFIGS:,} one-minute configs: {total / 1e9:.2f} GB "
            f"({DETAIL_HOURS} h of full rows {detail / 1e9:.2f} GB + 29 days compacted {compacted_days / 1e9:.2f} GB "
            f"+ per-minute counts {minutes / 1e6:.0f} MB); all full rows {today / 1e9:.1f} GB, "
            f"{today / total:.0f}x more; goal < {HISTORY_GOAL_BYTES / 1e9:.0f} GB; {_load_average()}"
        )


async def _logs_page() -> None:
    async with throwaway_database("altar_bench_logs_page") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(SEED_CONFIGS)
            await conn.execute(SEED_LOGS)
            await conn.execute("SET session_replication_role = origin")
            await conn.execute("VACUUM ANALYZE job_execution_logs")
            await users.create_user(conn, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
            failed = await conn.fetchval("SELECT count(*) FROM job_execution_logs WHERE status = 'failed'")
            started = time.perf_counter()
            for _ in range(20):
                await conn.fetchval("SELECT count(*) FROM job_execution_logs WHERE status = 'failed'")
            full_count_ms = (time.perf_counter() - started) / 20 * 1000
        finally:
            await conn.close()
        queries = await _queries_alone(url)
        process, base = await serve(url)
        try:
            headers = {"Authorization": f"Bearer {await login(base)}"}
            async with aiohttp.ClientSession() as session:
                floor = await _timed_requests(session, f"{base}/api/v1/auth/me", headers)
                page = await _timed_requests(
                    session, f"{base}{ADMIN_PATH}/execution-logs?status=failed&limit=100", headers
                )
                async with session.get(f"{base}{ADMIN_PATH}/execution-logs?status=failed", headers=headers) as response:
                    total, exact = response.headers["X-Total-Count"], response.headers["X-Total-Count-Exact"]
        finally:
            process.terminate()
            process.wait(timeout=30)
        print(
            f"/execution-logs?status=failed&limit=100 at 1M logs ({failed:,} failed), one client, {PAGE_REQUESTS} "
            f"requests: {_percentiles(page)} (goal p95 < {PAGE_GOAL_MS:.0f} ms); "
            f"its two queries alone {_percentiles(queries)}; "
            f"the floor (/api/v1/auth/me) {_percentiles(floor)}; X-Total-Count {total} (exact: {exact}); "
            f"the exact count it replaces {full_count_ms:.1f} ms; {_load_average()}"
        )


def _percentiles(times: list[float]) -> str:
    return f"p50 {statistics.median(times):.2f} ms, p95 {statistics.quantiles(times, n=20)[-1]:.2f} ms"


async def _timed_requests(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> list[float]:
    """Times (ms) of ``PAGE_REQUESTS`` requests one after another, after 20 of warm-up."""
    times: list[float] = []
    for index in range(PAGE_REQUESTS + 20):
        began = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            await response.read()
        assert response.status == 200
        if index >= 20:
            times.append((time.perf_counter() - began) * 1000)
    return times


async def _queries_alone(url: str) -> list[float]:
    """Times (ms) of the page's list and count queries, straight on a pool."""
    pool = await create_pool(url, min_size=1, max_size=1)
    filters = LogFilters(status="failed")
    times: list[float] = []
    try:
        for index in range(PAGE_REQUESTS + 20):
            began = time.perf_counter()
            await repository.list_logs(pool, filters=filters, skip=0, limit=100)
            await repository.count_logs(pool, filters=filters)
            if index >= 20:
                times.append((time.perf_counter() - began) * 1000)
    finally:
        await pool.close()
    return times


async def main() -> None:
    await _run_history()
    await _logs_page()
