"""Every closed candle stored once, against every fake exchange, through real ccxt.

Tests that need 90 days of 1h history run against the exchanges that serve that far (``DEEP_HISTORY``).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from backend.collection import repository
from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import (
    DEEP_HISTORY,
    EXCHANGES,
    Clock,
    NewConfig,
    RecordingPool,
    assert_stored_series_is_the_truth,
    stored_open_times,
)
from tests.collection.fake_exchange import FakeExchange

HOUR = timedelta(hours=1)
WEEK_OF_HOURS = 7 * 24  # candles of 1h in the default 7-day backfill


def _hourly(times: list[datetime]) -> bool:
    return all(b - a == HOUR for a, b in itertools.pairwise(times))


def _newest_closed(clock: Clock) -> datetime:
    return clock.now.replace(minute=0, second=0) - HOUR


def _window_start(clock: Clock, days: int) -> datetime:
    return clock.now.replace(minute=0, second=0) - timedelta(days=days)


@pytest.mark.parametrize("exchange_id", DEEP_HISTORY)
async def test_backfill_stores_every_closed_candle_of_the_window_once(
    pool: Pool, collector: Collector, new_config: NewConfig, clock: Clock
) -> None:
    outcome = await collector.collect_now(await new_config(backfill_days=90))

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 90 * 24)
    assert (times[0], times[-1], len(times)) == (_window_start(clock, 90), _newest_closed(clock), 90 * 24)
    assert _hourly(times)
    assert outcome.metadata["by_timeframe"]["1h"]["pages"] > 1


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_open_candle_is_never_stored(
    pool: Pool, collector: Collector, new_config: NewConfig, clock: Clock
) -> None:
    await collector.collect_now(await new_config(timeframes=["1m", "1h"], backfill_days=1))

    assert (await stored_open_times(pool, "1h"))[-1] == _newest_closed(clock)
    assert (await stored_open_times(pool, "1m"))[-1] == clock.now.replace(second=0) - timedelta(minutes=1)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_candles_are_stored_with_the_exchanges_values(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    await collector.collect_now(await new_config())

    await assert_stored_series_is_the_truth(pool, fake, _window_start(clock, 7), _newest_closed(clock))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_next_run_asks_once_from_its_last_3_candles_on_and_stores_only_what_is_new(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    newest = (await stored_open_times(pool))[-1]
    fake.requests.clear()
    clock.advance(3 * HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert outcome.records_collected == 3
    assert [request.start_ms for request in fake.requests] == [to_ms(newest - 2 * HOUR)]
    assert len(await stored_open_times(pool)) == WEEK_OF_HOURS + 3


@pytest.mark.parametrize("exchange_id", DEEP_HISTORY)
async def test_failed_page_ends_the_timeframe_there_and_the_next_run_leaves_no_hole(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config(backfill_days=90)
    window_start = _window_start(clock, 90)
    fake.fail_candles(503, times=100, from_ms=to_ms(window_start + 1000 * HOUR))

    first = await collector.collect_now(config_id)
    stored_after_failure = await stored_open_times(pool)
    fake.clear_failures()
    second = await collector.collect_now(config_id)

    assert first is not None
    assert second is not None
    assert (first.status, first.error_type) == ("failed", "ExchangeNotAvailable")
    assert first.metadata["by_timeframe"]["1h"]["retries"] == 2
    assert stored_after_failure[0] == window_start
    assert window_start + 999 * HOUR <= stored_after_failure[-1] < _newest_closed(clock)
    assert _hourly(stored_after_failure)
    assert second.status == "success"
    assert second.records_collected == 90 * 24 - len(stored_after_failure)
    await assert_stored_series_is_the_truth(pool, fake, window_start, _newest_closed(clock))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_deleted_candles_inside_the_window_are_refetched(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    hole_start = clock.now.replace(minute=0, second=0) - 50 * HOUR
    await pool.execute(
        "DELETE FROM candles WHERE open_time >= $1 AND open_time < $2", hole_start, hole_start + 10 * HOUR
    )

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert outcome.records_collected == 10
    assert outcome.metadata["by_timeframe"]["1h"]["holes_repaired"] == 1
    await assert_stored_series_is_the_truth(pool, fake, _window_start(clock, 7), _newest_closed(clock))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_hole_the_exchange_confirms_empty_is_remembered_and_not_refetched(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    no_trades = clock.now.replace(minute=0, second=0) - 30 * HOUR
    fake.missing_ms = {to_ms(no_trades), to_ms(no_trades + HOUR)}
    config_id = await new_config()
    await collector.collect_now(config_id)
    fake.requests.clear()

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert outcome.status == "success"
    assert [request.start_ms for request in fake.requests] == [to_ms(_newest_closed(clock) - 2 * HOUR)]
    empty = await pool.fetchrow("SELECT range_start, range_end FROM candle_empty_ranges")
    assert empty is not None
    assert (empty["range_start"], empty["range_end"]) == (no_trades, no_trades + 2 * HOUR)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_candle_left_out_of_the_new_candles_is_asked_again_in_the_same_run(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    window_start = _window_start(clock, 7)
    clock.advance(5 * HOUR)
    fake.late_ms = {to_ms(_newest_closed(clock) - 2 * HOUR)}

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 5)
    assert outcome.metadata["by_timeframe"]["1h"]["holes_repaired"] == 1
    await assert_stored_series_is_the_truth(pool, fake, window_start, _newest_closed(clock))


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_candle_missing_from_the_new_candles_is_confirmed_empty_in_the_same_run(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    clock.advance(5 * HOUR)
    no_trades = _newest_closed(clock) - 2 * HOUR
    fake.missing_ms = {to_ms(no_trades)}

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 4)
    assert outcome.metadata["by_timeframe"]["1h"]["holes_repaired"] == 1
    empty = await pool.fetchrow("SELECT range_start, range_end FROM candle_empty_ranges")
    assert empty is not None
    assert (empty["range_start"], empty["range_end"]) == (no_trades, no_trades + HOUR)


async def test_series_stored_without_holes_is_not_searched_for_holes_on_its_next_run(
    recording_pool: RecordingPool,
    exchanges: ExchangeClients,
    collection_settings: Settings,
    new_config: NewConfig,
    clock: Clock,
) -> None:
    pool, sent = recording_pool
    collector = Collector(pool=pool, exchanges=exchanges, settings=collection_settings, clock=clock)
    config_id = await new_config()
    await collector.collect_now(config_id)  # a new series: its window is searched for holes
    searched_by_backfill = sent.count(repository.FIND_HOLES)
    sent.clear()
    clock.advance(HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 1)
    assert searched_by_backfill == 1
    assert sent.count(repository.FIND_HOLES) == 0


@pytest.mark.parametrize("exchange_id", DEEP_HISTORY)
async def test_empty_stretch_longer_than_a_page_does_not_stop_the_forward_fetch(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    halt_start = _newest_closed(clock) - 1000 * HOUR
    fake.missing_ms = {to_ms(halt_start + h * HOUR) for h in range(400)}
    config_id = await new_config(backfill_days=90)

    first = await collector.collect_now(config_id)
    fake.requests.clear()
    second = await collector.collect_now(config_id)

    times = await stored_open_times(pool)
    assert first is not None
    assert (first.status, first.records_collected) == ("success", 90 * 24 - 400)
    assert (times[0], times[-1]) == (_window_start(clock, 90), _newest_closed(clock))
    assert halt_start + 400 * HOUR in times
    assert second is not None
    assert second.status == "success"
    assert [request.start_ms for request in fake.requests] == [to_ms(_newest_closed(clock) - 2 * HOUR)]


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_exchange_with_limited_history_is_not_asked_again_for_older_candles(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    earliest = clock.now.replace(minute=0, second=0) - 48 * HOUR
    fake.history_start_ms = to_ms(earliest)
    config_id = await new_config()
    await collector.collect_now(config_id)
    fake.requests.clear()
    clock.advance(HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert (await stored_open_times(pool))[0] == earliest
    assert [request.start_ms for request in fake.requests] == [to_ms(_newest_closed(clock) - 3 * HOUR)]


@pytest.mark.parametrize("exchange_id", DEEP_HISTORY)
async def test_raising_backfill_days_fetches_the_older_history(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    week_start = _window_start(clock, 7)
    fake.missing_ms = {to_ms(week_start)}  # no trades in the first hour of the first window
    config_id = await new_config(backfill_days=7)
    await collector.collect_now(config_id)
    await pool.execute("UPDATE data_collection_configs SET backfill_days = 30 WHERE id = $1", config_id)

    outcome = await collector.collect_now(config_id)

    times = await stored_open_times(pool)
    assert outcome is not None
    assert outcome.status == "success"
    assert times[0] == _window_start(clock, 30)
    assert len(times) == 30 * 24 - 1
    assert week_start not in times
