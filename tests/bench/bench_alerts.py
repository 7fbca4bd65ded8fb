"""Alert evaluation at 1,000 configs (3,000 series) and a million runs: how long one evaluation holds
its pooled connection, quiet and with every series stale at once.

A throwaway database (created and dropped here) gets 1,000 enabled configs of three timeframes each
and 1,000,000 execution logs over 30 days (95 % success, 5 % failed, spread over the configs), written
by generate_series. Each evaluation is made due and carried out in this process, as the winning
process does (``evaluate_once``), with a webhook URL set so that messages are queued (nothing is
posted: no process delivers here). Three cases, 20 evaluations each (the first case's first
evaluation apart):

- quiet: every config enabled just now (no series stale yet), nothing fires;
- all stale, first: every config enabled three hours ago without a candle, so 3,000 series fire in
  one evaluation (3,000 alerts inserted, one message queued);
- all stale, steady: the same 3,000 alerts keep firing, nothing changes.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from datetime import timedelta

import asyncpg

from backend.alerts.evaluation import evaluate_once
from backend.alerts.repository import EVALUATION_JOB
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database

CONFIGS = 1_000
LOGS = 1_000_000
DAYS = 30
ROUNDS = 20
WEBHOOK = "http://127.0.0.1:9/never-posted-here"

SEED_CONFIGS = f"""
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled)
SELECT 'C' || n || '/USDT', 'binance', '{{1m,5m,1h}}', 1, true FROM generate_series(1, {CONFIGS}) AS n
"""
SEED_LOGS = f"""
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, scheduled_for, finished_at,
     duration_seconds, records_collected, error_message, error_type)
SELECT 'collect_data_' || c, 'data_collection', c, 'C' || c || '/USDT', 'binance', status, 'schedule',
       started_at, started_at, started_at + interval '1 second', 1.0, 3,
       CASE WHEN status = 'failed' THEN 'RequestTimeout' END, CASE WHEN status = 'failed' THEN 'RequestTimeout' END
FROM (
    SELECT n, n % {CONFIGS} + 1 AS c, now() - n * (interval '{DAYS} days' / {LOGS}) AS started_at,
           CASE WHEN (n / {CONFIGS}) % 20 = 7 THEN 'failed' ELSE 'success' END AS status
    FROM generate_series(1, {LOGS}) AS n
) AS runs
"""
BEAT = """
INSERT INTO scheduler_heartbeats (scheduler_id, backend, expires_at)
VALUES ('bench:1:000001', 'inprocess', now() + interval '1 hour')
"""
MAKE_DUE = "UPDATE system_jobs SET next_run_at = '-infinity' WHERE name = $1"
ENABLED_AT = "UPDATE data_collection_configs SET schedule_anchor_at = now() - $1::interval"


async def _evaluate(pool: Pool, settings: Settings) -> float:
    """Milliseconds of one evaluation, claim to commit."""
    await pool.execute(MAKE_DUE, EVALUATION_JOB)
    started = time.perf_counter()
    evaluation = await evaluate_once(pool, settings=settings)
    elapsed = (time.perf_counter() - started) * 1000
    assert evaluation is not None
    return elapsed


def _line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"{name}: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"


async def main() -> None:
    async with throwaway_database("altar_bench_alerts") as url:
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            started = time.perf_counter()
            conn = await asyncpg.connect(url)  # no command timeout: the load takes a while
            try:
                await conn.execute("SET session_replication_role = replica")  # no triggers for the bulk load
                await conn.execute(SEED_CONFIGS)
                await conn.execute(SEED_LOGS)
                await conn.execute("SET session_replication_role = DEFAULT")
                await conn.execute(BEAT)
                await conn.execute("VACUUM ANALYZE job_execution_logs, data_collection_configs")
            finally:
                await conn.close()
            print(f"seeded {CONFIGS:,} configs and {LOGS:,} runs in {time.perf_counter() - started:.1f} s")
            settings = replace(Settings(), database_url=url, alert_webhook_url=WEBHOOK)
            await pool.execute("INSERT INTO system_jobs (name, next_run_at) VALUES ($1, now())", EVALUATION_JOB)

            await pool.execute(ENABLED_AT, timedelta(0))
            quiet = [await _evaluate(pool, settings) for _ in range(ROUNDS)]
            print(_line("quiet (nothing fires)", quiet))

            await pool.execute(ENABLED_AT, timedelta(hours=3))
            first = await _evaluate(pool, settings)
            firing = await pool.fetchval("SELECT count(*) FROM alerts WHERE firing_since IS NOT NULL")
            queued = await pool.fetchval("SELECT count(*) FROM alert_notifications")
            print(f"all stale, first: {first:.1f} ms ({firing:,} alerts fired, {queued} message queued)")
            steady = [await _evaluate(pool, settings) for _ in range(ROUNDS)]
            print(_line(f"all stale, steady ({firing:,} firing)", steady))
            print("load average " + " ".join(f"{load:.2f}" for load in os.getloadavg()))
        finally:
            await pool.close()
