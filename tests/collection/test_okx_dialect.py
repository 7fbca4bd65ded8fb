"""What is OKX's own: two candle endpoints with their page sizes, newest-first answers in windows."""

from __future__ import annotations

import pytest

from backend.collection.collector import Collector
from tests.collection.conftest import NewConfig
from tests.collection.fake_exchange import FakeExchange
from tests.collection.fake_okx import HISTORY_PATH, RECENT_PATH


@pytest.fixture
def exchange_id() -> str:
    return "okx"


async def test_okx_recent_candles_come_from_the_recent_endpoint_and_older_ones_from_history(
    collector: Collector, new_config: NewConfig, fake: FakeExchange
) -> None:
    await collector.collect_now(await new_config(backfill_days=90))

    by_endpoint = {path: [r for r in fake.requests if r.endpoint == path] for path in (RECENT_PATH, HISTORY_PATH)}
    assert {r.limit for r in by_endpoint[RECENT_PATH]} == {300}
    assert {r.limit for r in by_endpoint[HISTORY_PATH]} == {100}
    assert max(r.start_ms or 0 for r in by_endpoint[HISTORY_PATH]) < min(
        r.start_ms or 0 for r in by_endpoint[RECENT_PATH]
    )
