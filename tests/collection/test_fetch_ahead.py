"""The next page is fetched while the previous one is stored, never more than one page ahead."""

from __future__ import annotations

import asyncio

import asyncpg

from backend.collection import repository
from backend.collection.collector import Collector
from backend.db.pool import Pool
from tests.collection.conftest import create_config, stored_open_times
from tests.collection.fake_binance import FakeBinance

WEEK_OF_HOURS = 7 * 24


async def test_the_next_page_is_fetched_while_storing_waits_and_no_further(
    pool: Pool, collector: Collector, fake: FakeBinance, database_url: str
) -> None:
    fake.page_limit = 20
    config_id = await create_config(pool)
    series = await repository.open_series(pool, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    blocker = await asyncpg.connect(database_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", series.id)  # the writer of the series must wait
    run = asyncio.create_task(collector.collect_now(config_id))
    try:
        async with asyncio.timeout(30):
            while len(fake.requests) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # room for a third request, were it allowed

        assert len(fake.requests) == 2
        assert await stored_open_times(pool) == []
    finally:
        await blocker.execute("SELECT pg_advisory_unlock($1)", series.id)
        await blocker.close()
    outcome = await run

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert len(await stored_open_times(pool)) == WEEK_OF_HOURS
