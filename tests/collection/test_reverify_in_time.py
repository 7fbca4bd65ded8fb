"""A re-verification answers in time, whatever the range and however slow the exchange: what the
exchange has not sent within REVERIFY_SECONDS is left for the next request, and the answer's `end`
says where the comparison stopped."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import httpx
import pytest

from backend.collection.collector import Collector
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import NewConfig, stored_open_times
from tests.collection.fake_exchange import FakeExchange

REVERIFY = "/api/v1/admin/data-collection/reverify"
STALL_SECONDS = 3  # longer than REVERIFY_SECONDS


@pytest.fixture
def collection_settings(collection_settings: Settings) -> Settings:
    return dataclasses.replace(collection_settings, reverify_seconds=1)


@pytest.fixture
async def stored(collector: Collector, new_config: NewConfig, pool: Pool) -> list[datetime]:
    """The open times of what a first run stored."""
    await collector.collect_now(await new_config())
    return await stored_open_times(pool)


def _range(start: datetime, end: datetime) -> dict[str, str]:
    return {"symbol": "BTC/USDT", "timeframe": "1h", "start": start.isoformat(), "end": end.isoformat()}


async def test_a_comparison_longer_than_reverify_seconds_answers_where_it_stopped_and_the_next_goes_on(
    admin_api: httpx.AsyncClient, fake: FakeExchange, stored: list[datetime]
) -> None:
    fake.page_limit = 10
    fake.stall_candles(STALL_SECONDS, from_ms=to_ms(stored[20]))  # the third page comes too late

    first = await admin_api.post(REVERIFY, json=_range(stored[0], stored[40]))
    assert first.status_code == 200, first.text
    stopped_at = datetime.fromisoformat(first.json()["end"])
    second = await admin_api.post(REVERIFY, json=_range(stopped_at, stored[40]))  # from where it stopped

    answer = first.json()
    assert (stopped_at, answer["exchange_candles"], answer["not_at_exchange"], answer["error_type"]) == (
        stored[20],
        20,
        0,  # counted up to where it stopped
        None,
    )
    assert second.status_code == 200, second.text
    assert (datetime.fromisoformat(second.json()["end"]), second.json()["exchange_candles"]) == (stored[40], 20)


async def test_an_exchange_that_sends_nothing_within_reverify_seconds_is_a_timeout_comparing_nothing(
    admin_api: httpx.AsyncClient, fake: FakeExchange, stored: list[datetime]
) -> None:
    fake.stall_candles(STALL_SECONDS)

    response = await admin_api.post(REVERIFY, json=_range(stored[0], stored[40]))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (datetime.fromisoformat(answer["end"]), answer["exchange_candles"], answer["error_type"]) == (
        stored[0],
        0,
        "Timeout",
    )
    assert answer["error"] == "binance sent nothing to compare within REVERIFY_SECONDS=1"
