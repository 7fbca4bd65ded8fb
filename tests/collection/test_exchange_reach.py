"""How far back each exchange serves, and quiet stretches on windowed exchanges: what the collector
stores, what it confirms, and what the run and /coverage say it could not have."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.collection.collector import Collector
from backend.collection.profiles import PROFILES
from backend.collection.timeframes import candles_between, candles_in, floor_open, last_closed_open, to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange, candle_values

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
COVERAGE = "/api/v1/market-data/coverage"


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Litestar:
    """The app judging coverage at the collector's clock (how far back an exchange serves moves with it)."""
    app = create_app(settings)
    app.state.clock = clock
    return app


async def coverage_of(client: AsyncTestClient[Litestar], headers: dict[str, str], exchange: str) -> dict[str, Any]:
    response = await client.get(COVERAGE, params={"exchange": exchange, "symbol": "BTC/USDT"}, headers=headers)
    assert response.status_code == 200
    (series,) = response.json()
    return dict(series)


async def assert_exact_from(pool: Pool, first: datetime, newest_closed: datetime, fake: FakeExchange) -> None:
    """Every traded 1m candle from ``first`` to ``newest_closed`` is stored once, with the exchange's values."""
    rows = await pool.fetch(
        "SELECT open_time, open, high, low, close, volume FROM candles WHERE timeframe = '1m' ORDER BY open_time"
    )
    step = to_ms(first + MINUTE) - to_ms(first)
    expected = [t for t in range(to_ms(first), to_ms(newest_closed) + 1, step) if fake.traded(t, step)]
    assert [to_ms(row["open_time"]) for row in rows] == expected
    assert all(tuple(row[1:]) == candle_values(to_ms(row["open_time"])) for row in rows)


@pytest.mark.parametrize("exchange_id", ["kraken"])
async def test_kraken_backfill_stores_what_it_serves_and_says_the_rest_is_beyond_reach(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
) -> None:
    config_id = await new_config(timeframes=["1m"], backfill_days=3)

    outcome = await collector.collect_now(config_id)
    coverage = await coverage_of(client, admin_headers, "kraken")

    assert outcome is not None
    assert outcome.status == "success"
    message = "beyond what kraken serves: the latest 720 1m candles"
    assert outcome.metadata["beyond_reach"] == {"1m": message}
    assert outcome.metadata["by_timeframe"]["1m"]["beyond_reach"]["message"] == message
    stored = await stored_open_times(pool, "1m")
    newest_closed = last_closed_open(clock.now, "1m")
    assert stored[-1] == newest_closed
    assert 700 <= len(stored) < 720
    await assert_exact_from(pool, stored[0], newest_closed, fake)
    # the exchange did not say its history begins there: older candles exist, it does not serve them
    assert await pool.fetchval("SELECT earliest_available FROM candle_series") is None
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0
    wanted_from = floor_open(clock.now - timedelta(days=3), "1m")
    assert coverage["missing_candles"] == 0
    assert coverage["confirmed_empty_candles"] == 0
    assert coverage["reach"] == "the latest 720 1m candles"
    assert coverage["beyond_reach_candles"] == candles_in(wanted_from, stored[0], "1m")
    assert coverage["beyond_reach_candles"] + coverage["candles"] == candles_between(wanted_from, newest_closed, "1m")


@pytest.mark.parametrize("exchange_id", ["kraken"])
async def test_kraken_after_13_hours_down_confirms_no_traded_minute_empty(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
) -> None:
    config_id = await new_config(timeframes=["1m"], backfill_days=1)
    await collector.collect_now(config_id)
    newest_before = (await stored_open_times(pool, "1m"))[-1]
    clock.advance(13 * HOUR)

    outcome = await collector.collect_now(config_id)
    later = await collector.collect_now(config_id)  # holes repaired: nothing to ask within reach
    coverage = await coverage_of(client, admin_headers, "kraken")

    assert outcome is not None
    assert later is not None
    assert (outcome.status, later.status) == ("success", "success")
    assert outcome.metadata["beyond_reach"] == {"1m": "beyond what kraken serves: the latest 720 1m candles"}
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0
    stored = await stored_open_times(pool, "1m")
    after_outage = [t for t in stored if t > newest_before]
    newest_closed = last_closed_open(clock.now, "1m")
    assert after_outage[-1] == newest_closed
    assert after_outage == [
        after_outage[0] + i * MINUTE for i in range(len(after_outage))
    ]  # contiguous from the oldest it serves on
    unreachable = candles_in(newest_before + MINUTE, after_outage[0], "1m")
    assert unreachable > 0
    assert coverage["missing_candles"] == 0
    assert coverage["confirmed_empty_candles"] == 0
    assert coverage["beyond_reach_candles"] >= unreachable


# longer than one window of 1m candles: 300 on Coinbase, 1,500 on KuCoin, 1,000 on Gate
QUIET_HOURS = {"coinbase": 6, "kucoin": 26, "gate": 18}


@pytest.mark.parametrize("exchange_id", list(QUIET_HOURS))
async def test_windowed_exchange_after_a_quiet_stretch_keeps_the_series_current(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
    exchange_id: str,
) -> None:
    config_id = await new_config(timeframes=["1m"], backfill_days=1)
    await collector.collect_now(config_id)
    quiet = QUIET_HOURS[exchange_id] * HOUR
    quiet_from = floor_open(clock.now, "1m") + MINUTE
    fake.quiet_between(to_ms(quiet_from), to_ms(quiet_from + quiet))
    clock.advance(quiet + 2 * HOUR)

    first = await collector.collect_now(config_id)
    second = await collector.collect_now(config_id)
    coverage = await coverage_of(client, admin_headers, exchange_id)

    assert first is not None
    assert second is not None
    assert (first.status, second.status) == ("success", "success"), first.error_message
    stored = await stored_open_times(pool, "1m")
    newest_closed = last_closed_open(clock.now, "1m")
    assert stored[-1] == newest_closed
    await assert_exact_from(pool, stored[0], newest_closed, fake)
    empty = await pool.fetch("SELECT range_start, range_end FROM candle_empty_ranges")
    assert [(r["range_start"], r["range_end"]) for r in empty] == [(quiet_from, quiet_from + quiet)]
    assert coverage["missing_candles"] == 0
    assert coverage["confirmed_empty_candles"] == quiet // MINUTE


@pytest.mark.parametrize("exchange_id", ["gate"])
async def test_gate_with_the_default_backfill_starts_from_the_oldest_candle_it_accepts(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
) -> None:
    config_id = await new_config(timeframes=["1m"])  # backfill_days 7: 10,080 candles, Gate serves 10,000

    outcome = await collector.collect_now(config_id)
    coverage = await coverage_of(client, admin_headers, "gate")

    assert outcome is not None
    assert outcome.status == "success", outcome.error_message
    assert outcome.metadata["beyond_reach"] == {"1m": "beyond what gate serves: the latest 10,000 1m candles"}
    stored = await stored_open_times(pool, "1m")
    newest_closed = last_closed_open(clock.now, "1m")
    assert stored[-1] == newest_closed
    assert 9_900 < len(stored) < 10_000
    await assert_exact_from(pool, stored[0], newest_closed, fake)
    assert coverage["missing_candles"] == 0
    assert coverage["reach"] == "the latest 10,000 1m candles"
    assert coverage["beyond_reach_candles"] == candles_in(
        floor_open(clock.now - timedelta(days=7), "1m"), stored[0], "1m"
    )


@pytest.fixture
def binance_unverified(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binance declared unverified: read as it is, but its answers confirm nothing by themselves."""
    monkeypatch.setitem(PROFILES, "binance", dataclasses.replace(PROFILES["binance"], verified=False))


async def test_an_unverified_exchange_never_confirms_an_empty_stretch_or_where_history_begins(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
    binance_unverified: None,
) -> None:
    start = clock.now.replace(minute=0, second=0, microsecond=0) - 30 * HOUR
    fake.missing_ms = {to_ms(start), to_ms(start + HOUR)}
    fake.history_start_ms = to_ms(clock.now - 3 * 24 * HOUR)
    config_id = await new_config()

    outcomes = [await collector.collect_now(config_id) for _ in range(2)]
    coverage = await coverage_of(client, admin_headers, "binance")

    assert [o.status for o in outcomes if o is not None] == ["success", "success"]
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0
    assert await pool.fetchval("SELECT earliest_available FROM candle_series") is None
    assert coverage["exchange_verified"] is False
    assert coverage["missing_candles"] == 2  # it could not tell: not "no trades"
    assert coverage["confirmed_empty_candles"] == 0
