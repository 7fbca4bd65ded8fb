"""What the exchange confirmed it does not have: asked again once old, cleared by an admin, and
shown by /coverage apart from the candles that are missing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection.collector import Collector
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from tests.collection.conftest import EXCHANGES, Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange, high_below_low

HOUR = timedelta(hours=1)
CLEAR = "/api/v1/admin/data-collection/confirmed-empty"
COVERAGE = "/api/v1/market-data/coverage"


@pytest.fixture
def no_trades(clock: Clock, fake: FakeExchange) -> list[int]:
    """Two hours without trades, 30 hours ago: the exchange serves no candle for them."""
    start = clock.now.replace(minute=0, second=0) - 30 * HOUR
    fake.missing_ms = {to_ms(start), to_ms(start + HOUR)}
    return sorted(fake.missing_ms)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_confirmed_empty_stretch_is_asked_again_once_older_than_its_max_age(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock, no_trades: list[int]
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    fake.missing_ms = set()  # the exchange has since filled in those hours
    clock.advance(23 * HOUR)
    await collector.collect_now(config_id)
    still_confirmed = not set(no_trades) & {to_ms(t) for t in await stored_open_times(pool)}
    clock.advance(2 * HOUR)  # the confirmation is now older than EMPTY_RANGE_MAX_AGE_HOURS=24

    outcome = await collector.collect_now(config_id)

    assert still_confirmed
    assert outcome is not None
    assert outcome.status == "success"
    assert set(no_trades) <= {to_ms(t) for t in await stored_open_times(pool)}
    assert await pool.fetchval("SELECT count(*) FROM candle_empty_ranges") == 0


async def test_admin_clears_the_confirmations_of_a_series_and_the_next_run_asks_again(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    no_trades: list[int],
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    fake.missing_ms = set()

    response = await client.delete(CLEAR, params={"symbol": "BTC/USDT", "timeframe": "1h"}, headers=admin_headers)
    outcome = await collector.collect_now(config_id)

    assert response.status_code == 200
    assert response.json() == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "empty_ranges_cleared": 1,
        "history_starts_cleared": 0,
    }
    assert outcome is not None
    assert outcome.records_collected == 2
    assert set(no_trades) <= {to_ms(t) for t in await stored_open_times(pool)}


async def test_clearing_confirmations_forgets_where_history_begins(
    client: AsyncTestClient[Litestar],
    admin_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
) -> None:
    fake.history_start_ms = to_ms(clock.now.replace(minute=0, second=0) - 48 * HOUR)
    config_id = await new_config()
    await collector.collect_now(config_id)
    fake.history_start_ms = None  # the exchange now serves older history

    response = await client.delete(CLEAR, params={"symbol": "btc/usdt"}, headers=admin_headers)
    await collector.collect_now(config_id)

    assert response.json()["history_starts_cleared"] == 1
    assert len(await stored_open_times(pool)) == 7 * 24


async def test_viewer_cannot_clear_confirmations(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str]
) -> None:
    response = await client.delete(CLEAR, params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    assert response.status_code == 403


async def test_clearing_needs_a_symbol(client: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> None:
    response = await client.delete(CLEAR, headers=admin_headers)

    assert response.status_code == 400
    assert "symbol" in response.text


async def test_coverage_shows_confirmed_empty_candles_apart_from_missing_ones(
    client: AsyncTestClient[Litestar],
    viewer_headers: dict[str, str],
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    clock: Clock,
    no_trades: list[int],
) -> None:
    await collector.collect_now(await new_config())
    missing = clock.now.replace(minute=0, second=0) - 60 * HOUR
    await pool.execute("DELETE FROM candles WHERE open_time >= $1 AND open_time < $2", missing, missing + 3 * HOUR)

    response = await client.get(COVERAGE, params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    [series] = response.json()
    assert (series["candles"], series["expected_candles"]) == (7 * 24 - 5, 7 * 24)
    assert (series["missing_candles"], series["confirmed_empty_candles"], series["rejected_candles"]) == (3, 2, 0)
    assert series["gap_count"] == 2


async def test_coverage_counts_candles_the_exchange_kept_sending_broken(
    client: AsyncTestClient[Litestar],
    viewer_headers: dict[str, str],
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
) -> None:
    broken = clock.now.replace(minute=0, second=0) - 20 * HOUR
    fake.corrupt_candles(high_below_low, at_ms=[to_ms(broken)], times=100)
    await collector.collect_now(await new_config())

    response = await client.get(COVERAGE, params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    [series] = response.json()
    assert (series["missing_candles"], series["confirmed_empty_candles"], series["rejected_candles"]) == (1, 0, 1)
