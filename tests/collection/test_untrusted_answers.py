"""Answers that must not be trusted, against every fake exchange, through real ccxt: asked again, never stored.

One fault at a time, injected per request into the fake exchange: malformed 200s, an empty answer
while the series is behind, broken candles (null, NaN, Infinity, non-positive prices, negative
volume, high below low or below open/close, an open time off the grid).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from backend.collection.collector import Collector
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from tests.collection.conftest import EXCHANGES, Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import (
    FakeExchange,
    RowChange,
    high_below_low,
    null,
    off_grid,
    value,
)

pytestmark = pytest.mark.parametrize("exchange_id", EXCHANGES)

HOUR = timedelta(hours=1)
WEEK_OF_HOURS = 7 * 24
WELL_FORMED_EMPTY = {
    "binance": "[]",
    "okx": '{"code": "0", "msg": "", "data": []}',
    "kraken": '{"error": [], "result": {"XBTUSDT": [], "last": 0}}',
    "bybit": '{"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "symbol": "BTCUSDT", "list": []}}',
    "kucoin": '{"code": "200000", "data": []}',
    "coinbase": '{"candles": []}',
    "gate": "[]",
}
MALFORMED: dict[str, Callable[[FakeExchange, int], None]] = {
    "truncated JSON": lambda fake, times: fake.truncate_candles(times=times),
    "{}": lambda fake, times: fake.answer_candles("{}", times=times),
    "an HTML page": lambda fake, times: fake.answer_candles(
        "<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html", times=times
    ),
    "an empty body": lambda fake, times: fake.answer_candles("", times=times),
}


def _high_below_open_or_close(row: list[float]) -> None:
    row[2] = row[3] + 0.01  # above the low, below the open and the close


BROKEN: dict[str, tuple[RowChange, str]] = {
    "null close": (null("close"), "close missing"),
    "NaN open": (value("open", "NaN"), "open is not finite"),
    "Infinity high": (value("high", "Infinity"), "high is not finite"),
    "negative low": (value("low", -5), "a price is zero or negative"),
    "zero close": (value("close", 0), "a price is zero or negative"),
    "negative volume": (value("volume", -1), "volume is negative"),
    "high below low": (high_below_low, "high is below low"),
    "high below open or close": (_high_below_open_or_close, "high is below open or close"),
    "open time off the grid": (off_grid(7000), "open time off the grid by 7000 ms"),
}


def _hourly(times: list[datetime]) -> bool:
    return all(b - a == HOUR for a, b in itertools.pairwise(times))


def _window_start(clock: Clock) -> datetime:
    return clock.now.replace(minute=0, second=0) - timedelta(days=7)


@pytest.mark.parametrize("malformed", MALFORMED)
async def test_malformed_answer_is_asked_again_and_the_run_stores_everything(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, malformed: str
) -> None:
    MALFORMED[malformed](fake, 1)

    outcome = await collector.collect_now(await new_config())

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert outcome.metadata["by_timeframe"]["1h"]["retries"] == 1
    assert len(times) == WEEK_OF_HOURS
    assert _hourly(times)


@pytest.mark.parametrize("malformed", MALFORMED)
async def test_malformed_answers_that_persist_fail_the_timeframe_with_bad_response(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, malformed: str
) -> None:
    MALFORMED[malformed](fake, 100)

    outcome = await collector.collect_now(await new_config())

    assert outcome is not None
    assert (outcome.status, outcome.error_type, outcome.records_collected) == ("failed", "BadResponse", 0)
    assert outcome.error_message is not None
    assert "answered 200 with" in outcome.error_message
    assert outcome.metadata["by_timeframe"]["1h"]["retries"] == 2
    assert await stored_open_times(pool) == []


async def test_one_empty_answer_while_the_series_is_behind_loses_no_candle(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, exchange_id: str
) -> None:
    fake.answer_candles(WELL_FORMED_EMPTY[exchange_id])

    outcome = await collector.collect_now(await new_config())

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert len(times) == WEEK_OF_HOURS
    assert _hourly(times)
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


@pytest.mark.parametrize("broken", BROKEN)
async def test_broken_candle_sent_once_is_asked_again_and_stored_right(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock, broken: str
) -> None:
    target = _window_start(clock) + 10 * HOUR
    fake.corrupt_candles(BROKEN[broken][0], at_ms=[to_ms(target)])

    outcome = await collector.collect_now(await new_config())

    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", WEEK_OF_HOURS)
    assert outcome.metadata["by_timeframe"]["1h"]["retries"] == 1
    assert target in await stored_open_times(pool)


@pytest.mark.parametrize("broken", BROKEN)
async def test_broken_candle_that_keeps_coming_is_never_stored_and_the_run_is_partial(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock, broken: str
) -> None:
    change, reason = BROKEN[broken]
    target = _window_start(clock) + 10 * HOUR
    fake.corrupt_candles(change, at_ms=[to_ms(target)], times=100)

    outcome = await collector.collect_now(await new_config())

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("partial", "InvalidCandle")
    assert target not in times
    assert len(times) == WEEK_OF_HOURS - 1
    details = outcome.metadata["by_timeframe"]["1h"]
    assert (details["rejected_candles"], details["retries"]) == (1, 2)
    assert details["invalid_candles"][0]["open_time"] == target.isoformat()
    assert details["invalid_candles"][0]["reason"] == reason
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


async def test_null_fields_in_one_repair_answer_do_not_become_a_permanent_hole(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    hole = clock.now.replace(minute=0, second=0) - 30 * HOUR
    await pool.execute("DELETE FROM candles WHERE open_time >= $1 AND open_time < $2", hole, hole + 3 * HOUR)
    fake.corrupt_candles(null("close"), at_ms=[to_ms(hole + h * HOUR) for h in range(3)])

    outcome = await collector.collect_now(config_id)

    times = await stored_open_times(pool)
    assert outcome is not None
    assert (outcome.status, outcome.records_collected) == ("success", 3)
    assert len(times) == WEEK_OF_HOURS
    assert _hourly(times)
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0
