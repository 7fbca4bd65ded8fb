"""Only final candles are stored, and an answer whose open times do not fit the window asked for is
never read as "no candles": against each dialect, through real ccxt."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import EXCHANGES, Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange, in_seconds

# exchanges whose API itself sends open times in milliseconds (ccxt turns others' seconds into them)
MILLISECOND_APIS = ("binance", "okx")

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
WEEK_OF_HOURS = 7 * 24
JUST_PAST_A_MINUTE = datetime(2025, 1, 15, 12, 31, 1, tzinfo=UTC)


def _in_seconds_off_the_grid(row: list[Any]) -> None:
    """The open time in seconds, and 1,234 s before the candle's: inside the window, off its grid."""
    row[0] = (row[0] - 1_234_000) // 1000


def _window(clock: Clock) -> list[datetime]:
    """The hourly candles a new 1h series of 7 days asks for, the open one included."""
    start = clock.now.replace(minute=0, second=0) - timedelta(days=7)
    return [start + hours * HOUR for hours in range(WEEK_OF_HOURS + 1)]


@pytest.mark.parametrize("exchange_id", MILLISECOND_APIS)
async def test_one_candle_in_seconds_makes_the_page_invalid_and_its_minute_is_never_confirmed_empty(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    target = _window(clock)[10]
    fake.corrupt_candles(in_seconds, at_ms=[to_ms(target)], times=100)

    outcome = await collector.collect_now(await new_config())

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("partial", "InvalidCandle")
    assert (len(times), target in times) == (WEEK_OF_HOURS - 1, False)
    [invalid] = outcome.metadata["by_timeframe"]["1h"]["invalid_candles"]
    assert invalid["open_time"] == target.isoformat()
    assert invalid["reason"] == f"open time in seconds, not milliseconds: {to_ms(target) // 1000}"
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


@pytest.mark.parametrize("exchange_id", MILLISECOND_APIS)
async def test_every_candle_in_seconds_stores_nothing_confirms_nothing_and_is_not_a_success(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    fake.corrupt_candles(in_seconds, at_ms=[to_ms(t) for t in _window(clock)], times=1000)
    config_id = await new_config()

    first = await collector.collect_now(config_id)
    clock.advance(HOUR)
    second = await collector.collect_now(config_id)

    for outcome in (first, second):
        assert outcome is not None
        assert (outcome.status, outcome.error_type, outcome.records_collected) == ("partial", "InvalidCandle", 0)
    assert await stored_open_times(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0
    assert await pool.fetchval("SELECT count(*) FROM candle_series WHERE earliest_available IS NOT NULL") == 0


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_the_minute_still_open_on_a_lagging_exchange_clock_is_stored_only_once_it_closes_there(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    clock.now = JUST_PAST_A_MINUTE  # 12:31:01 here, 12:30:58 on the exchange: its 12:30 candle is open
    fake.now_ms = lambda: clock.ms() - 3000
    config_id = await new_config(timeframes=["1m"], backfill_days=1)

    first = await collector.collect_now(config_id)
    stored_first = await stored_open_times(pool, "1m")
    clock.advance(MINUTE)
    await collector.collect_now(config_id)

    assert first is not None
    assert first.status == "success"
    assert stored_first[-1] == JUST_PAST_A_MINUTE.replace(second=0) - 2 * MINUTE
    assert (await stored_open_times(pool, "1m"))[-1] == JUST_PAST_A_MINUTE.replace(second=0) - MINUTE
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_candle_sent_in_seconds_off_the_grid_takes_no_good_candles_place(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    target = _window(clock)[10]
    fake.corrupt_candles(_in_seconds_off_the_grid, at_ms=[to_ms(target)], times=100)

    outcome = await collector.collect_now(await new_config())

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("partial", "InvalidCandle")
    assert (len(times), target in times, target - HOUR in times) == (WEEK_OF_HOURS - 1, False, True)
    invalid = outcome.metadata["by_timeframe"]["1h"]["invalid_candles"]  # unplaced: once per answer holding it
    assert {(i["open_time"], i["reason"].startswith("open time in seconds")) for i in invalid} == {(None, True)}
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_settle_delay_set_for_the_exchange_holds_back_candles_that_closed_just_now(
    pool: Pool, collection_settings: Settings, new_config: NewConfig, clock: Clock, exchange_id: str
) -> None:
    clock.now = JUST_PAST_A_MINUTE + 5 * timedelta(seconds=1)  # 12:31:06, in step with the exchange
    exchanges = ExchangeClients(collection_settings.exchange_overrides, settle_seconds={exchange_id: 10})
    settings = dataclasses.replace(collection_settings, exchange_settle_seconds={exchange_id: 10})
    collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=clock)
    try:
        await collector.collect_now(await new_config(timeframes=["1m"], backfill_days=1))
    finally:
        await exchanges.close()

    assert (await stored_open_times(pool, "1m"))[-1] == JUST_PAST_A_MINUTE.replace(second=0) - 2 * MINUTE
