"""SIGTERM with a run in progress: seconds until the process is gone, with the default settings.

Heroku sends SIGKILL 30 s after SIGTERM. The web process (``python -m backend serve``, in-process
scheduler) and an arq worker (``python -m backend worker``, on a throwaway ``redis-server``) each
start a long run of the real collector against the fake Binance (a second per request), get SIGTERM
once the run is fetching, and are timed until they exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from tests.bench.throwaway import throwaway_database
from tests.collection.fake_binance import FakeBinance, running_fake_binance
from tests.conftest import TEST_SECRET_KEY
from tests.faults import ThrowawayRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
HEROKU_KILL_SECONDS = 30
CONFIG = (
    "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days) "
    "VALUES ('BTC/USDT', 'binance', ARRAY['1m'], 60, 365)"
)
STARTED = "SELECT count(*) FROM job_execution_logs WHERE config_id IS NOT NULL AND heartbeat_at IS NOT NULL"


async def _time_sigterm(url: str, fake: FakeBinance, command: list[str], extra_env: dict[str, str]) -> float:
    """Start ``command`` with one long run due, SIGTERM it once the run fetches; seconds until it exits."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE data_collection_configs, job_execution_logs, scheduler_heartbeats CASCADE")
        await conn.execute(CONFIG)
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DATABASE_URL": url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "EXCHANGE_OVERRIDES": json.dumps(fake.exchange_overrides()),
            "LOG_LEVEL": "WARNING",
            **extra_env,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        try:
            requests = len(fake.requests)
            while not (await conn.fetchval(STARTED) and len(fake.requests) > requests):
                await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            started = time.perf_counter()
            await asyncio.to_thread(process.wait, timeout=60)
            return time.perf_counter() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        await conn.close()


async def main() -> None:
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    async with throwaway_database("altar_bench_shutdown") as url, running_fake_binance(["BTC/USDT"]) as fake:
        fake.latency_seconds = 1  # a year of 1m candles at a second per request: the run outlives the grace
        web = await _time_sigterm(url, fake, ["serve", "--port", str(free_port())], {"SCHEDULER_BACKEND": "inprocess"})
        print(f"web process (in-process scheduler): exits {web:.1f} s after SIGTERM (Heroku kills at 30 s)")
        if shutil.which("redis-server") is None:
            print("worker: skipped (redis-server is not installed)")
            return
        redis = ThrowawayRedis()
        redis.start()
        try:
            queue = {"REDIS_URL": redis.url, "ARQ_QUEUE_NAME": f"bench:{uuid.uuid4().hex[:8]}"}
            worker = await _time_sigterm(url, fake, ["worker"], {"SCHEDULER_BACKEND": "arq", **queue})
        finally:
            redis.remove()
        print(f"arq worker: exits {worker:.1f} s after SIGTERM (Heroku kills at 30 s)")
