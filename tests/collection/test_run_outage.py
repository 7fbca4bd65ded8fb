"""A run whose final log write meets a PostgreSQL outage closes itself once the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.db.pool import Pool, create_pool
from backend.runs import repository as runs
from backend.settings import Settings
from tests.collection.conftest import Clock, create_config
from tests.collection.fake_binance import FakeBinance
from tests.faults import ThrowawayPostgres
from tests.scheduling.conftest import eventually

# the run's final write, waiting for the row lock the test holds
FINAL_WRITE_WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE '%UPDATE job_execution_logs%'
  AND query LIKE '%records_collected = new_records%'
"""


@pytest.fixture
async def outage_pool(throwaway_postgres: ThrowawayPostgres) -> AsyncIterator[tuple[Pool, str]]:
    url = await throwaway_postgres.new_database()
    pool = await create_pool(url, min_size=0, max_size=3)
    yield pool, url
    throwaway_postgres.start()
    await pool.close()


async def test_the_run_closes_itself_with_what_it_collected_once_the_database_is_back(
    outage_pool: tuple[Pool, str],
    throwaway_postgres: ThrowawayPostgres,
    exchanges: ExchangeClients,
    collection_settings: Settings,
    clock: Clock,
    fake: FakeBinance,
) -> None:
    pool, url = outage_pool
    # no heartbeat during the test, and no stale-run detection that could explain the outcome
    settings = dataclasses.replace(collection_settings, run_heartbeat_seconds=600, stale_run_seconds=1200)
    collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=clock)
    config_id = await create_config(pool, timeframes=["1h"], backfill_days=2)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
    fake.latency_seconds = 0.3
    run = asyncio.create_task(collector.execute_run(run_id))
    await eventually(lambda: _requested(fake))
    locker = await asyncpg.connect(url)
    await locker.execute("BEGIN")
    await locker.execute("SELECT FROM job_execution_logs WHERE id = $1 FOR UPDATE", run_id)
    await eventually(lambda: pool.fetchval(FINAL_WRITE_WAITING))

    throwaway_postgres.stop()  # the final write fails with the server's shutdown
    with contextlib.suppress(Exception):
        await locker.close()
    throwaway_postgres.start()
    async with asyncio.timeout(60):
        outcome = await run

    row = await pool.fetchrow(
        "SELECT status, records_collected, error_type, metadata FROM job_execution_logs WHERE id = $1", run_id
    )
    assert row is not None
    assert outcome is not None
    assert row["status"] == "success"
    assert row["error_type"] is None
    assert row["records_collected"] == await pool.fetchval("SELECT count(*) FROM candles") > 0
    assert row["metadata"]["by_timeframe"]["1h"]["records"] == row["records_collected"]


async def _requested(fake: FakeBinance) -> bool:
    return bool(fake.requests)
