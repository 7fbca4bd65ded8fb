"""The next page is fetched while the previous one is stored, never more than one page ahead of the
pages the writer holds (a transaction being committed and one filling up), on each exchange that
answers from where it is asked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from backend.collection import repository
from backend.collection.collector import Collector
from backend.collection.storage import MAX_PAGES_PER_TRANSACTION
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from tests.collection.conftest import FROM_SINCE, Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange

WEEK_OF_HOURS = 7 * 24
HOUR = timedelta(hours=1)

pytestmark = pytest.mark.parametrize("exchange_id", FROM_SINCE)


async def _until_requests_stop(fake: FakeExchange) -> int:
    """Wait until the fake gets no new request for a while; how many it got."""
    async with asyncio.timeout(30):
        while True:
            seen = len(fake.requests)
            await asyncio.sleep(0.3)
            if seen and len(fake.requests) == seen:
                return seen


async def test_fetching_goes_on_while_pages_wait_to_be_written_and_stops_one_page_beyond_them(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, database_url: str, exchange_id: str
) -> None:
    fake.page_limit = 1  # 168 pages: more than two transactions hold
    config_id = await new_config()
    series = await repository.open_series(pool, exchange=exchange_id, symbol="BTC/USDT", timeframe="1h")
    blocker = await asyncpg.connect(database_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", series.id)  # every write of the series must wait
    run = asyncio.create_task(collector.collect_now(config_id))
    try:
        requests = await _until_requests_stop(fake)

        # at most a transaction being committed, another one filling up, and the page after them
        assert 2 <= requests <= 2 * MAX_PAGES_PER_TRANSACTION + 1
        assert await stored_open_times(pool) == []
    finally:
        await blocker.execute("SELECT pg_advisory_unlock($1)", series.id)
        await blocker.close()
    outcome = await run

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert len(await stored_open_times(pool)) == WEEK_OF_HOURS


async def test_a_page_waiting_for_a_slow_next_one_is_committed_meanwhile(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    fake.page_limit = 50
    window_start = clock.now.replace(minute=0, second=0) - timedelta(days=7)
    fake.stall_candles(30, times=10, from_ms=to_ms(window_start + 50 * HOUR))  # the second page hangs
    run = asyncio.create_task(collector.collect_now(await new_config()))
    try:
        async with asyncio.timeout(30):
            while len(await stored_open_times(pool)) < 50:
                await asyncio.sleep(0.05)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)

    assert (await stored_open_times(pool))[0] == window_start
