"""The Procfile's ``worker`` process: the real ``arq`` command, started by honcho as Heroku would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import FakeBinance
from tests.scheduling.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_the_procfile_worker_collects_on_schedule_and_leaves_cleanly_on_sigterm(
    pool: Pool, arq_settings: Settings, fake: FakeBinance
) -> None:
    await pool.execute(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days) "
        "VALUES ('BTC/USDT', 'binance', ARRAY['1h'], 60, 1)"
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": arq_settings.database_url or "",
        "REDIS_URL": arq_settings.redis_url or "",
        "SCHEDULER_BACKEND": "arq",
        "ARQ_QUEUE_NAME": arq_settings.arq_queue_name,
        "SCHEDULER_TICK_SECONDS": "1",
        "EXCHANGE_OVERRIDES": json.dumps(fake.exchange_overrides()),
        "LOG_LEVEL": "WARNING",
    }
    honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", "worker"]
    worker = subprocess.Popen(honcho, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        sql = (
            "SELECT status, records_collected FROM job_execution_logs "
            "WHERE trigger = 'schedule' AND status <> 'running'"
        )
        run = await eventually(lambda: pool.fetchrow(sql), timeout=30)
        beating = await pool.fetchval("SELECT count(*) FROM scheduler_heartbeats WHERE backend = 'arq'")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)

    assert run["status"] == "success", output
    assert run["records_collected"] > 0
    assert beating == 1
    assert await pool.fetchval("SELECT count(*) FROM scheduler_heartbeats") == 0  # it left on SIGTERM
