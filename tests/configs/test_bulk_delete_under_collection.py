"""Deleting hundreds of configs at once while they collect: the in-process scheduler starts and ends
runs of those very configs (real collector, real ccxt, a fake Binance) during the bulk transaction."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import running_fake_binance
from tests.scheduling.conftest import eventually

BULK = "/api/v1/admin/data-collection/configs/bulk"
CONFIGS = 500
SYMBOLS = [f"C{n}/USDT" for n in range(CONFIGS)]
# every config runs every second (INTERVAL_UNIT_SECONDS=1), on a 1m series with half an hour of history
INSERT_CONFIGS = """
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days)
SELECT 'C' || n || '/USDT', 'binance', '{1m}', 1, 1 FROM generate_series(0, $1 - 1) AS n
RETURNING id
"""
Client = AsyncTestClient[Litestar]


@pytest.fixture
async def collecting(settings: Settings) -> AsyncIterator[Client]:
    """The app with the in-process scheduler running 16 collections at a time against a fake Binance."""
    history_start_ms = (int(time.time()) - 1800) * 1000
    async with running_fake_binance(SYMBOLS, history_start_ms=history_start_ms) as fake:
        collecting_settings = replace(
            settings,
            scheduler_backend="inprocess",
            exchange_overrides=fake.exchange_overrides(),
            interval_unit_seconds=1,
            max_concurrent_jobs=16,
            scheduler_heartbeat_seconds=1,
            run_heartbeat_seconds=1,
            stale_run_seconds=30,
            shutdown_grace_seconds=1,
            exchange_retry_base_ms=10,
        )
        async with AsyncTestClient(app=create_app(collecting_settings)) as client:
            yield client


# a few hours of earlier runs per config: each delete detaches that many logs, as after days of collection
HISTORY = """
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, finished_at, duration_seconds)
SELECT 'collect_data_' || c.id, 'data_collection', c.id, c.symbol, c.exchange, 'success', 'manual',
       now() - make_interval(mins => n), now() - make_interval(mins => n) + interval '1 second', 1
FROM data_collection_configs AS c, generate_series(1, $1) AS n
"""
RECENT_RUNS = (
    "SELECT count(*) FROM job_execution_logs WHERE status <> 'running' AND started_at > now() - interval '1 hour'"
)


async def _recent_runs(pool: Pool, at_least: int) -> bool:
    count: int = await pool.fetchval(RECENT_RUNS)
    return count >= at_least


async def test_deleting_hundreds_of_configs_at_once_while_they_collect_succeeds_and_fails_no_run(
    collecting: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    ids = [row["id"] for row in await pool.fetch(INSERT_CONFIGS, CONFIGS)]
    await pool.execute(HISTORY, 100)
    answers = []
    for round_, batch in enumerate((ids[0:400:2], ids[1:400:2])):  # 200 each, between configs that go on
        await eventually(lambda round_=round_: _recent_runs(pool, 150 * (round_ + 1)), timeout=120)
        response = await collecting.post(BULK, json={"action": "delete", "ids": batch}, headers=admin_headers)
        answers.append((response.status_code, response.text[:200]))

    assert [status for status, _ in answers] == [200, 200], answers
    remaining = {row["id"] for row in await pool.fetch("SELECT id FROM data_collection_configs")}
    assert remaining == set(ids[400:])
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE config_id IS NULL") >= 400 * 100
    deadlocked = await pool.fetch("SELECT id FROM job_execution_logs WHERE error_type = 'DeadlockDetectedError'")
    assert deadlocked == []
