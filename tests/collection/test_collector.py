"""A run's lifecycle and log through the real ccxt client: against the fake Binance, and where the
case is the same on every exchange, against each fake.

What every dialect must guarantee about the stored series: ``test_series_integrity.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import datetime, timedelta

import pytest

from backend.collection.collector import Collector
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.runs import repository as runs
from tests.collection.conftest import EXCHANGES, FROM_SINCE, Clock, NewConfig, create_config, stored_open_times
from tests.collection.fake_binance import FakeBinance
from tests.collection.fake_exchange import FakeExchange

HOUR = timedelta(hours=1)
WEEK_OF_HOURS = 7 * 24  # candles of 1h in the default 7-day backfill


def _hourly(times: list[datetime]) -> bool:
    return all(b - a == HOUR for a, b in itertools.pairwise(times))


async def test_run_is_logged_with_counts_and_timeframe_details(pool: Pool, collector: Collector) -> None:
    config_id = await create_config(pool, timeframes=["1h", "4h"])

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    row = await pool.fetchrow("SELECT * FROM job_execution_logs WHERE id = $1", outcome.run_id)
    assert row is not None
    assert (row["status"], row["records_collected"], row["trigger"]) == ("success", WEEK_OF_HOURS + 42, "manual")
    assert row["duration_seconds"] > 0
    assert row["error_type"] is None
    metadata = row["metadata"]
    assert (metadata["timeframes_collected"], metadata["timeframes_failed"]) == (2, 0)
    assert metadata["timeframes"] == ["1h", "4h"]
    assert metadata["by_timeframe"]["4h"]["records"] == 42
    assert metadata["by_timeframe"]["1h"]["last_candle"] == "2025-01-15T11:00:00+00:00"


async def test_page_size_comes_from_ccxt_features(pool: Pool, collector: Collector, fake: FakeBinance) -> None:
    await collector.collect_now(await create_config(pool))

    assert {request.limit for request in fake.requests} == {1000}


async def test_exchange_ignoring_since_does_not_loop_or_duplicate(
    pool: Pool, collector: Collector, fake: FakeBinance, clock: Clock
) -> None:
    fake.ignore_start_time = True
    fake.page_limit = 24
    config_id = await create_config(pool)
    first = await collector.collect_now(config_id)
    clock.advance(2 * HOUR)

    second = await collector.collect_now(config_id)

    assert first is not None
    assert second is not None
    assert (first.status, first.records_collected) == ("success", 23)
    assert (second.status, second.records_collected) == ("success", 2)
    times = await stored_open_times(pool)
    assert len(times) == 25
    assert _hourly(times)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_rate_limit_answer_is_retried_and_the_run_succeeds(
    collector: Collector, new_config: NewConfig, fake: FakeExchange
) -> None:
    fake.fail_candles(429, retry_after=1)

    outcome = await collector.collect_now(await new_config())

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert outcome.metadata["by_timeframe"]["1h"]["retries"] == 1


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_unknown_symbol_fails_with_bad_symbol_and_stores_nothing(
    pool: Pool, collector: Collector, new_config: NewConfig
) -> None:
    outcome = await collector.collect_now(await new_config(symbol="XRP/USDT"))

    assert outcome is not None
    assert (outcome.status, outcome.error_type, outcome.records_collected) == ("failed", "BadSymbol", 0)
    assert outcome.error_message is not None
    assert "XRP/USDT" in outcome.error_message
    assert await pool.fetchval("SELECT count(*) FROM candles") == 0


async def test_exchange_answering_invalid_symbol_fails_without_retry(
    pool: Pool, collector: Collector, fake: FakeBinance
) -> None:
    fake.delisted.add("BTC/USDT")

    outcome = await collector.collect_now(await create_config(pool))

    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("failed", "BadSymbol")
    assert outcome.error_message is not None
    assert "Invalid symbol" in outcome.error_message
    assert len(fake.requests) == 1


async def test_one_failing_timeframe_makes_the_run_partial_and_keeps_the_others(
    pool: Pool, collector: Collector, fake: FakeBinance
) -> None:
    fake.unsupported_intervals = {"4h"}

    outcome = await collector.collect_now(await create_config(pool, timeframes=["1h", "4h"]))

    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("partial", "BadRequest")
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("4h: ")
    assert (outcome.metadata["timeframes_collected"], outcome.metadata["timeframes_failed"]) == (1, 1)
    assert len(await stored_open_times(pool, "1h")) == WEEK_OF_HOURS
    assert await stored_open_times(pool, "4h") == []


@pytest.mark.parametrize("exchange_id", FROM_SINCE)
async def test_cancelled_run_is_logged_and_the_next_run_stores_the_rest_once(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange
) -> None:
    fake.page_limit = 20
    fake.latency_seconds = 0.1
    config_id = await new_config()
    run_id = await runs.start_run(pool, config_id=config_id, trigger="schedule")
    task = asyncio.create_task(collector.execute_run(run_id))
    while await pool.fetchval("SELECT count(*) FROM candles") < 40:
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    stored_before = len(await stored_open_times(pool))
    fake.latency_seconds = 0

    outcome = await collector.collect_now(config_id)

    cancelled = await pool.fetchrow(
        "SELECT status, error_type, records_collected FROM job_execution_logs WHERE id = $1", run_id
    )
    assert cancelled is not None
    assert (cancelled["status"], cancelled["error_type"]) == ("failed", "Cancelled")
    assert cancelled["records_collected"] == stored_before
    assert outcome is not None
    assert outcome.records_collected == WEEK_OF_HOURS - stored_before
    times = await stored_open_times(pool)
    assert len(times) == WEEK_OF_HOURS
    assert _hourly(times)


@pytest.mark.parametrize("exchange_id", FROM_SINCE)
async def test_run_longer_than_the_job_timeout_fails_with_timeout_and_keeps_its_candles(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    collector.settings = dataclasses.replace(collector.settings, job_timeout_seconds=2)
    fake.page_limit = 10
    window_start = clock.now.replace(minute=0, second=0) - timedelta(days=7)
    fake.stall_candles(30, times=100, from_ms=to_ms(window_start + 20 * HOUR))  # the third page never comes

    outcome = await collector.collect_now(await new_config())

    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("failed", "Timeout")
    stored = await pool.fetchval("SELECT count(*) FROM candles")
    assert stored == 20
    assert outcome.records_collected == stored


async def test_scheduled_run_of_a_disabled_config_does_nothing_and_logs_nothing(
    pool: Pool, collector: Collector, fake: FakeBinance
) -> None:
    config_id = await create_config(pool, enabled=False)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="schedule")

    outcome = await collector.execute_run(run_id)

    assert outcome is None
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs") == 0
    assert fake.requests == []


async def test_manual_run_of_a_disabled_config_runs(pool: Pool, collector: Collector) -> None:
    outcome = await collector.collect_now(await create_config(pool, enabled=False))

    assert outcome is not None
    assert outcome.status == "success"


async def test_run_of_a_deleted_config_does_nothing_and_logs_nothing(pool: Pool, collector: Collector) -> None:
    config_id = await create_config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="schedule")
    await pool.execute("DELETE FROM data_collection_configs WHERE id = $1", config_id)

    assert await collector.execute_run(run_id) is None
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs") == 0


async def test_heartbeat_is_refreshed_while_the_run_goes(pool: Pool, collector: Collector, fake: FakeBinance) -> None:
    fake.page_limit = 10
    fake.latency_seconds = 0.15
    config_id = await create_config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
    task = asyncio.create_task(collector.execute_run(run_id))
    await asyncio.sleep(1.6)

    refreshed = await pool.fetchval("SELECT heartbeat_at > started_at FROM job_execution_logs WHERE id = $1", run_id)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert refreshed
