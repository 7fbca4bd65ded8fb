"""Runs that begin together, begun in one statement: the cost of a run's start (its log, its config's
``last_run_at``, its stored series read) alone and in groups of 8 and 32, as a burst begins them.

``RUNS`` queued manual runs of as many configs; each round begins them all, ``group`` at a time,
through the statement the collector sends. CPU per run: this process (asyncpg) and the pool's
PostgreSQL server process, read from ``/proc``. Rounds alternate, twice each, so that a change in
the machine's speed shows as a spread rather than as a difference between group sizes.
"""

from __future__ import annotations

import os
import time

from backend.collection.repository import begin_runs_reading_series
from backend.db.pool import Pool, create_pool
from backend.runs.repository import start_run
from tests.bench.bench_run_cost import cpu_seconds
from tests.bench.throwaway import throwaway_database

RUNS = 600
GROUPS = (1, 8, 32)
ROUNDS = 2
INSERT_CONFIGS = """
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes)
SELECT 'B' || n || '/USDT', 'binance', '{1m}', 10 FROM generate_series(1, $1) AS n
"""
END_RUNS = """
UPDATE job_execution_logs SET status = 'success', finished_at = now(), duration_seconds = 0
WHERE status = 'running'
"""


async def _round(pool: Pool, group: int) -> tuple[float, float]:
    """Queue a run of every config, then begin them ``group`` at a time: CPU ms per run (this process, PostgreSQL)."""
    await pool.execute(END_RUNS)
    config_ids = [row["id"] for row in await pool.fetch("SELECT id FROM data_collection_configs ORDER BY id")]
    run_ids = [await start_run(pool, config_id=config_id, trigger="manual") for config_id in config_ids]
    server_pid: int = await pool.fetchval("SELECT pg_backend_pid()")
    server, cpu = cpu_seconds([server_pid]), time.process_time()
    for first in range(0, len(run_ids), group):
        await begin_runs_reading_series(pool, run_ids[first : first + group])
    cpu = time.process_time() - cpu
    server_after = cpu_seconds([server_pid])
    server_used = 0.0 if server is None or server_after is None else server_after - server
    return 1000 * cpu / RUNS, 1000 * server_used / RUNS


async def main() -> None:
    async with throwaway_database("altar_bench") as url:
        pool = await create_pool(url, min_size=1, max_size=1)  # one connection: its server process is the figure
        try:
            await pool.execute(INSERT_CONFIGS, RUNS)
            await _round(pool, 1)  # warm-up: statements prepared, caches filled
            figures: dict[int, list[tuple[float, float]]] = {group: [] for group in GROUPS}
            for _ in range(ROUNDS):
                for group in GROUPS:
                    figures[group].append(await _round(pool, group))
        finally:
            await pool.close()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{RUNS} runs begun, alone and in groups (CPU per run; {ROUNDS} alternated rounds each); load average {load}")
    for group, rounds in figures.items():
        each = ", ".join(f"{service:.2f} + {database:.2f} ms" for service, database in rounds)
        label = "alone" if group == 1 else f"{group} at once"
        print(f"  {label:>10}: this process + PostgreSQL {each}")
