"""What each fake does that the collector has to live with, seen through ccxt as the collector sees it:
Kraken's latest 720 candles, Bybit's and KuCoin's newest-first answers, the windows of KuCoin,
Coinbase and Gate, Gate's limit on how far back a window may start, no candle without trades."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tests.collection.conftest import FAKES, TEST_RATE_LIMIT_MS
from tests.collection.fake_exchange import FakeExchange

NOW_MS = int(datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC).timestamp() * 1000)
MINUTE_MS = 60_000
OPEN_MINUTE_MS = NOW_MS // MINUTE_MS * MINUTE_MS  # the candle still open at NOW_MS


@pytest.fixture
async def served(exchange_id: str) -> AsyncIterator[tuple[FakeExchange, Any]]:
    """The fake of ``exchange_id`` at NOW_MS and a ccxt client of it with its markets loaded."""
    async with FAKES[exchange_id](["BTC/USDT"], now_ms=lambda: NOW_MS) as fake:
        options = {**fake.exchange_overrides()[exchange_id], "rateLimit": TEST_RATE_LIMIT_MS}
        client = getattr(ccxt_async, exchange_id)(options)
        try:
            await client.load_markets()
            yield fake, client
        finally:
            await client.close()


def _open_times(candles: list[list[Any]]) -> list[int]:
    return [candle[0] for candle in candles]


@pytest.mark.parametrize("exchange_id", ["kraken"])
async def test_kraken_answers_its_latest_720_candles_whatever_since_says(served: tuple[FakeExchange, Any]) -> None:
    _, client = served

    candles = await client.fetch_ohlcv("BTC/USDT", "1m", NOW_MS - 3 * 86_400_000)

    assert _open_times(candles) == list(range(OPEN_MINUTE_MS - 719 * MINUTE_MS, OPEN_MINUTE_MS + 1, MINUTE_MS))


@pytest.mark.parametrize("exchange_id", ["bybit", "kucoin", "coinbase"])
async def test_answers_are_written_newest_first(served: tuple[FakeExchange, Any]) -> None:
    fake, client = served
    since = OPEN_MINUTE_MS - 10 * MINUTE_MS

    await client.fetch_ohlcv("BTC/USDT", "1m", since, 5)
    body = await client.fetch(f"{fake.url}{fake.received[-1]}")

    rows = body["result"]["list"] if "result" in body else body.get("data", body.get("candles"))
    times = [int(row["start"] if isinstance(row, dict) else row[0]) for row in rows]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize(("exchange_id", "window"), [("kucoin", 1500), ("coinbase", 300), ("gate", 1000)])
async def test_windowed_exchanges_answer_with_the_window_only(served: tuple[FakeExchange, Any], window: int) -> None:
    fake, client = served
    since = OPEN_MINUTE_MS - 5000 * MINUTE_MS

    candles = await client.fetch_ohlcv("BTC/USDT", "1m", since, window)

    assert _open_times(candles) == list(range(since, since + window * MINUTE_MS, MINUTE_MS))
    assert fake.requests[-1].start_ms == since


@pytest.mark.parametrize("exchange_id", ["kucoin", "coinbase", "gate"])
async def test_a_window_inside_a_quiet_stretch_is_answered_empty(served: tuple[FakeExchange, Any]) -> None:
    fake, client = served
    quiet_start = OPEN_MINUTE_MS - 600 * MINUTE_MS
    fake.quiet_between(quiet_start, quiet_start + 360 * MINUTE_MS)

    inside = await client.fetch_ohlcv("BTC/USDT", "1m", quiet_start, 300)
    around = await client.fetch_ohlcv("BTC/USDT", "1m", quiet_start - 30 * MINUTE_MS, 300)

    assert inside == []
    assert _open_times(around) == list(range(quiet_start - 30 * MINUTE_MS, quiet_start, MINUTE_MS))


@pytest.mark.parametrize("exchange_id", ["gate"])
async def test_gate_refuses_a_window_starting_more_than_10000_candles_back(served: tuple[FakeExchange, Any]) -> None:
    _, client = served

    reachable = await client.fetch_ohlcv("BTC/USDT", "1m", OPEN_MINUTE_MS - 10_000 * MINUTE_MS, 1000)
    with pytest.raises(ccxt.BadRequest) as refused:
        await client.fetch_ohlcv("BTC/USDT", "1m", OPEN_MINUTE_MS - 10_001 * MINUTE_MS, 1000)

    assert len(reachable) == 1000
    body = json.loads(str(refused.value).removeprefix("gate "))
    assert body == {
        "label": "INVALID_PARAM_VALUE",
        "message": "Candlestick too long ago. Maximum 10000 points ago are allowed",
    }


@pytest.mark.parametrize("exchange_id", ["coinbase"])
async def test_coinbase_refuses_a_window_of_more_than_350_candles(served: tuple[FakeExchange, Any]) -> None:
    _, client = served
    since = OPEN_MINUTE_MS - 1000 * MINUTE_MS

    with pytest.raises(ccxt.BadRequest, match="less than 350"):
        await client.fetch_ohlcv("BTC/USDT", "1m", since, None, {"until": since + 351 * MINUTE_MS})
