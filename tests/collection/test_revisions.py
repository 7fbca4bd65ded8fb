"""Revisions caught: each run asks again for the newest candles it stored and rewrites those the
exchange changed since (also in a compacted month); an admin re-verifies a stored range on demand.
Against each dialect, through real ccxt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.collection.collector import Collector
from backend.collection.compaction import compact_closed_partitions
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import EXCHANGES, Clock, NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange, value

pytestmark = pytest.mark.parametrize("exchange_id", EXCHANGES)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
REVERIFY = "/api/v1/admin/data-collection/reverify"


@pytest.fixture
def app(collection_settings: Settings, collector: Collector) -> Litestar:
    """The app, with the test's collector (its clock, ccxt pointed at the fake)."""
    app = create_app(collection_settings)
    app.on_startup.append(lambda app: setattr(app.state, "collector", collector))
    return app


async def _volume(pool: Pool, open_time: datetime, timeframe: str = "1h") -> float:
    volume: float = await pool.fetchval(
        "SELECT volume FROM candles WHERE timeframe = $1 AND open_time = $2", timeframe, open_time
    )
    return volume


async def test_a_candle_the_exchange_revised_after_it_was_stored_is_rewritten_by_the_next_run(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    newest = (await stored_open_times(pool))[-1]
    fake.corrupt_candles(value("volume", 7.0), at_ms=[to_ms(newest)], times=100)
    clock.advance(HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert outcome.status == "success"
    assert outcome.records_collected == 2  # the revised candle, and the one that closed since
    assert outcome.metadata["by_timeframe"]["1h"]["revised"] == 1
    assert await _volume(pool, newest) == 7.0
    assert await pool.fetchval("SELECT revised_candles FROM candle_series") == 1


async def test_a_run_with_nothing_revised_rewrites_nothing(
    pool: Pool, collector: Collector, new_config: NewConfig, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    clock.advance(HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert (outcome.records_collected, outcome.metadata["by_timeframe"]["1h"]["revised"]) == (1, 0)


async def test_a_revision_of_a_candle_in_a_compacted_month_is_caught(
    pool: Pool, collector: Collector, new_config: NewConfig, fake: FakeExchange, clock: Clock
) -> None:
    clock.now = datetime(2025, 2, 1, 0, 0, 30, tzinfo=UTC)  # every closed 5m candle is in January
    config_id = await new_config(timeframes=["5m"], backfill_days=1)
    await collector.collect_now(config_id)
    assert await compact_closed_partitions(pool, now=clock.now, after=timedelta(0)) == ["candle_data_5m_2025_01"]
    newest = datetime(2025, 1, 31, 23, 55, tzinfo=UTC)
    fake.corrupt_candles(value("volume", 7.0), at_ms=[to_ms(newest)], times=100)
    clock.advance(5 * MINUTE)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    assert outcome.metadata["by_timeframe"]["5m"]["revised"] == 1
    assert await _volume(pool, newest, "5m") == 7.0
    assert len(await stored_open_times(pool, "5m")) == 24 * 12 + 1


async def test_coverage_counts_the_revised_candles_of_a_series(
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    clock: Clock,
    client: AsyncTestClient[Litestar],
    viewer_headers: dict[str, str],
    exchange_id: str,
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    stored = await stored_open_times(pool)
    fake.corrupt_candles(value("volume", 7.0), at_ms=[to_ms(t) for t in stored[-2:]], times=100)
    clock.advance(HOUR)
    await collector.collect_now(config_id)

    response = await client.get(
        "/api/v1/market-data/coverage", params={"symbol": "BTC/USDT", "exchange": exchange_id}, headers=viewer_headers
    )

    assert response.status_code == 200, response.text
    [series] = response.json()
    assert series["revised_candles"] == 2


async def test_reverify_repairs_changed_and_missing_candles_of_a_stored_range(
    pool: Pool,
    collector: Collector,
    new_config: NewConfig,
    fake: FakeExchange,
    admin_api: httpx.AsyncClient,
    clock: Clock,
    exchange_id: str,
) -> None:
    await collector.collect_now(await new_config())
    stored = await stored_open_times(pool)
    start, end = stored[20], stored[40]
    changed, missing = stored[25], stored[30]
    clock.advance(HOUR)
    await pool.execute("DELETE FROM candles WHERE open_time = $1", missing)
    fake.corrupt_candles(value("volume", 7.0), at_ms=[to_ms(changed)], times=100)

    response = await admin_api.post(
        REVERIFY,
        json={
            "exchange": exchange_id,
            "symbol": "btc/usdt",
            "timeframe": "1h",
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("exchange_candles", "revised", "inserted", "not_at_exchange", "error_type")} == {
        "exchange_candles": 20,
        "revised": 1,
        "inserted": 1,
        "not_at_exchange": 0,
        "error_type": None,
    }
    assert await _volume(pool, changed) == 7.0
    assert missing in await stored_open_times(pool)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exchange": "nowhere"}, "exchange"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"symbol": "BTCUSDT"}, "symbol"),
    ],
)
async def test_reverify_answers_400_naming_the_field_on_bad_input(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], change: dict[str, str], field: str
) -> None:
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-11T00:00:00Z", "end": "2025-01-12T00:00:00Z"}

    response = await client.post(REVERIFY, json={**body, **change}, headers=admin_headers)

    assert response.status_code == 400, response.text
    assert field in response.text


async def test_reverify_of_an_end_before_its_start_compares_nothing(
    admin_api: httpx.AsyncClient, fake: FakeExchange, exchange_id: str
) -> None:
    body = {"exchange": exchange_id, "symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-11T00:00:00Z"}

    response = await admin_api.post(REVERIFY, json={**body, "end": "2025-01-10T00:00:00Z"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["start"], answer["end"]) == ("2025-01-11T00:00:00Z", "2025-01-11T00:00:00Z")
    assert [answer[k] for k in ("exchange_candles", "revised", "inserted", "not_at_exchange", "rejected")] == [0] * 5
    assert answer["error_type"] is None
    assert fake.received == []  # the exchange was not asked


async def test_reverify_needs_an_admin(client: AsyncTestClient[Litestar], viewer_headers: dict[str, str]) -> None:
    body = {"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-11T00:00:00Z", "end": "2025-01-12T00:00:00Z"}

    response = await client.post(REVERIFY, json=body, headers=viewer_headers)

    assert response.status_code == 403


async def test_the_candles_asked_again_unchanged_are_not_the_runs_first_candle(
    pool: Pool, collector: Collector, new_config: NewConfig, clock: Clock
) -> None:
    config_id = await new_config()
    await collector.collect_now(config_id)
    clock.advance(HOUR)

    outcome = await collector.collect_now(config_id)

    assert outcome is not None
    newest = (await stored_open_times(pool))[-1].isoformat()
    details = outcome.metadata["by_timeframe"]["1h"]
    assert (details["first_candle"], details["last_candle"]) == (newest, newest)
