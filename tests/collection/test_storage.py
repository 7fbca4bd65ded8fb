"""Writing candles: appends and merges, pages sharing a transaction, partitions made on demand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from backend.collection import repository
from backend.collection.repository import CandleRow
from backend.collection.storage import (
    MAX_PAGES_PER_TRANSACTION,
    PartitionCache,
    SeriesWriter,
    StoredPage,
    store_candles,
)
from backend.db.pool import Pool
from tests.collection.conftest import assert_summary_equals_recount, stored_open_times

START = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
WAITING_FOR_THE_SERIES_LOCK = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
"""


def _hours(first: int, count: int, price: float = 100.0) -> list[CandleRow]:
    return [(START + h * HOUR, price, price + 1, price - 1, price + 0.5, 2.0) for h in range(first, first + count)]


async def _store(pool: Pool, rows: list[CandleRow]) -> int:
    return await store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe="1h", rows=rows)


async def _writer(pool: Pool, committed: list[StoredPage]) -> SeriesWriter:
    series = await repository.open_series(pool, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    return SeriesWriter(pool, series, PartitionCache(pool), on_committed=committed.append)


async def test_new_candles_are_stored_and_counted(pool: Pool) -> None:
    assert await _store(pool, _hours(0, 24)) == 24

    assert await stored_open_times(pool) == [START + h * HOUR for h in range(24)]


async def test_storing_the_same_candles_again_changes_nothing(pool: Pool) -> None:
    await _store(pool, _hours(0, 24))

    assert await _store(pool, _hours(0, 24)) == 0
    assert len(await stored_open_times(pool)) == 24


async def test_a_candle_the_exchange_changed_is_rewritten(pool: Pool) -> None:
    await _store(pool, _hours(0, 24))

    assert await _store(pool, _hours(5, 1, price=200.0)) == 1

    row = await pool.fetchrow("SELECT open, close FROM candles WHERE open_time = $1", START + 5 * HOUR)
    assert row is not None
    assert (row["open"], row["close"]) == (200.0, 200.5)


async def test_a_page_overlapping_stored_candles_adds_only_the_missing_ones(pool: Pool) -> None:
    await _store(pool, _hours(0, 10))
    await _store(pool, _hours(20, 10))

    assert await _store(pool, _hours(5, 20)) == 10

    assert await stored_open_times(pool) == [START + h * HOUR for h in range(30)]
    series_id = await pool.fetchval("SELECT id FROM candle_series")
    await assert_summary_equals_recount(pool, series_id, 60)


async def test_pages_sharing_a_transaction_are_invisible_until_it_commits(pool: Pool) -> None:
    committed: list[StoredPage] = []
    writer = await _writer(pool, committed)
    async with writer:
        await writer.store(_hours(0, 10), more_coming=True)
        await writer.store(_hours(10, 10), more_coming=True)

        assert await stored_open_times(pool) == []
        assert committed == []

    assert len(await stored_open_times(pool)) == 20
    assert [page.records for page in committed] == [10, 10]


async def test_a_cancelled_writer_loses_only_the_pages_waiting_and_the_next_one_resumes_after_the_rest(
    pool: Pool,
) -> None:
    committed: list[StoredPage] = []
    writer = await _writer(pool, committed)

    async def cancelled_with_a_page_waiting() -> None:
        async with writer:
            await writer.store(_hours(0, 10))
            await writer.store(_hours(10, 10), more_coming=True)
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cancelled_with_a_page_waiting()

    series = await repository.open_series(pool, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert series.newest == START + 9 * HOUR
    assert [page.records for page in committed] == [10]
    assert len(await stored_open_times(pool)) == 10


async def test_pages_waiting_when_a_walk_fails_are_kept(pool: Pool) -> None:
    committed: list[StoredPage] = []
    writer = await _writer(pool, committed)

    async def failing_with_a_page_waiting() -> None:
        async with writer:
            await writer.store(_hours(0, 10), more_coming=True)
            raise RuntimeError("the next page failed after its retries")

    with pytest.raises(RuntimeError):
        await failing_with_a_page_waiting()

    assert [page.records for page in committed] == [10]
    assert len(await stored_open_times(pool)) == 10


async def test_a_transaction_holds_at_most_a_bounded_number_of_pages(pool: Pool) -> None:
    committed: list[StoredPage] = []
    writer = await _writer(pool, committed)
    async with writer:
        for page in range(MAX_PAGES_PER_TRANSACTION + 1):
            await writer.store(_hours(page, 1), more_coming=True)

    # candles written by one transaction share its id (xmin)
    transactions = await pool.fetch("SELECT count(*) AS candles FROM candle_data GROUP BY xmin::text ORDER BY 1 DESC")
    assert [row["candles"] for row in transactions] == [MAX_PAGES_PER_TRANSACTION, 1]
    assert len(committed) == MAX_PAGES_PER_TRANSACTION + 1


async def test_candles_of_a_month_without_a_partition_get_one(pool: Pool) -> None:
    old = datetime(2019, 6, 30, 23, 0, tzinfo=UTC)

    await store_candles(
        pool, exchange="binance", symbol="BTC/USDT", timeframe="1m", rows=[(old, 1.0, 2.0, 0.5, 1.5, 3.0)]
    )

    names = await pool.fetch("SELECT partition_name FROM candle_partitions WHERE timeframe = '1m'")
    assert "candle_data_1m_2019_06" in {row["partition_name"] for row in names}


async def test_two_writers_of_one_series_at_once_store_every_candle_once(pool: Pool) -> None:
    counts = await asyncio.gather(_store(pool, _hours(0, 300)), _store(pool, _hours(100, 300)))

    assert sum(counts) == 400
    assert await stored_open_times(pool) == [START + h * HOUR for h in range(400)]
    series_id = await pool.fetchval("SELECT id FROM candle_series")
    await assert_summary_equals_recount(pool, series_id, 60)


async def test_pages_waiting_after_a_commit_that_failed_behind_the_walk_are_not_stored(
    pool: Pool, database_url: str
) -> None:
    committed: list[StoredPage] = []
    writer = await _writer(pool, committed)
    blocker = await asyncpg.connect(database_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", writer.series.id)  # the commit behind waits for it

    async def walking_on_after_a_failed_commit() -> None:
        async with writer:
            for page in range(MAX_PAGES_PER_TRANSACTION):  # the last one starts the commit behind
                await writer.store(_hours(page, 1), more_coming=True)
            while (pid := await blocker.fetchval(WAITING_FOR_THE_SERIES_LOCK)) is None:
                await asyncio.sleep(0.01)
            await blocker.execute("SELECT pg_terminate_backend($1)", pid)  # that commit fails
            await blocker.execute("SELECT pg_advisory_unlock($1)", writer.series.id)
            for page in range(MAX_PAGES_PER_TRANSACTION, 2 * MAX_PAGES_PER_TRANSACTION):
                await writer.store(_hours(page, 1), more_coming=True)  # the last one meets the failure

    try:
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):  # the connection was cut
            await walking_on_after_a_failed_commit()
    finally:
        await blocker.close()

    # what came after the failed commit would have left a hole behind the newest candle
    assert (committed, await stored_open_times(pool)) == ([], [])
