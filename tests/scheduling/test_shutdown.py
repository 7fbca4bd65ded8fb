"""SIGTERM to the served app (``python -m backend serve``, as Heroku runs it) with a run in progress."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backend.db.pool import Pool
from tests.collection.fake_binance import FakeBinance
from tests.conftest import TEST_SECRET_KEY
from tests.faults import free_port
from tests.scheduling.conftest import eventually

HEROKU_KILL_SECONDS = 30  # Heroku sends SIGKILL this long after SIGTERM
MARGIN_SECONDS = 5


async def test_sigterm_with_a_run_in_progress_exits_by_itself_well_before_herokus_kill(
    pool: Pool, database_url: str, fake: FakeBinance
) -> None:
    """With the default SHUTDOWN_GRACE_SECONDS: the run is cancelled, logged, and the process is gone
    with a margin before the platform would kill it."""
    fake.latency_seconds = 1  # a year of 1m candles at a second per page: the run outlives the grace
    await pool.execute(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days) "
        "VALUES ('BTC/USDT', 'binance', ARRAY['1m'], 60, 365)"
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SCHEDULER_BACKEND": "inprocess",
        "EXCHANGE_OVERRIDES": json.dumps(fake.exchange_overrides()),
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "backend", "serve", "--port", str(free_port())]
    web = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        started = "SELECT id FROM job_execution_logs WHERE config_id IS NOT NULL AND heartbeat_at IS NOT NULL"
        run_id = await eventually(lambda: pool.fetchval(started), timeout=60)
        await eventually(lambda: _fetching(fake))

        web.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(web.wait, timeout=HEROKU_KILL_SECONDS - MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HEROKU_KILL_SECONDS - MARGIN_SECONDS} s after SIGTERM")
    finally:
        if web.poll() is None:
            web.kill()
        output = web.communicate()[0].decode(errors="replace")

    assert web.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises SIGTERM once it has shut down
    assert "Traceback" not in output
    row = await pool.fetchrow("SELECT status, error_type FROM job_execution_logs WHERE id = $1", run_id)
    assert row is not None
    assert dict(row) == {"status": "failed", "error_type": "Cancelled"}
    assert await pool.fetchval("SELECT count(*) FROM scheduler_heartbeats") == 0


async def _fetching(fake: FakeBinance) -> bool:
    return bool(fake.requests)
