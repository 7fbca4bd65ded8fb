"""The in-process scheduler against a throwaway PostgreSQL that fails under it: it keeps scheduling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from backend.db.pool import Pool, create_pool
from backend.scheduling.scheduler import InProcessScheduler
from backend.settings import Settings
from tests.faults import PostgresShutdownProxy, ThrowawayPostgres
from tests.scheduling.conftest import StandInJob, eventually

CONFIG = (
    "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes) "
    "VALUES ('BTC/USDT', 'binance', ARRAY['1m'], 60) RETURNING id"
)
FINISHED = "SELECT status FROM job_execution_logs WHERE config_id = $1 AND status <> 'running'"


@pytest.fixture
async def fault_database(throwaway_postgres: ThrowawayPostgres) -> str:
    return await throwaway_postgres.new_database()


@pytest.fixture
async def direct_pool(fault_database: str) -> AsyncIterator[Pool]:
    """The test's own view of the throwaway database, not through any fault."""
    pool = await create_pool(fault_database, min_size=0, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def proxy(throwaway_postgres: ThrowawayPostgres) -> AsyncIterator[PostgresShutdownProxy]:
    proxy = PostgresShutdownProxy(throwaway_postgres)
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_the_loop_survives_an_error_the_driver_was_not_expected_to_raise(
    scheduling_settings: Settings, fault_database: str, direct_pool: Pool, proxy: PostgresShutdownProxy
) -> None:
    """A shutdown message right after an answer leaves asyncpg's connection in a state it raises
    ``InternalClientError`` for (no ``PostgresError``, no ``InterfaceError``)."""
    settings = replace(scheduling_settings, database_url=proxy.url(fault_database))
    scheduler_pool = await create_pool(proxy.url(fault_database), min_size=0, max_size=2)
    scheduler = InProcessScheduler(scheduler_pool, settings=settings, run_job=StandInJob(direct_pool))
    await scheduler.start()
    try:
        proxy.shutdown_after_next_reply()
        await eventually(lambda: _delivered(proxy))

        config_id = await direct_pool.fetchval(CONFIG)

        assert await eventually(lambda: direct_pool.fetchval(FINISHED, config_id)) == "success"
    finally:
        await scheduler.stop()
        await scheduler_pool.close()


async def _delivered(proxy: PostgresShutdownProxy) -> bool:
    return proxy.faults_delivered > 0
