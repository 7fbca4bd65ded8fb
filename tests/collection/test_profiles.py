"""Every exchange profile agrees with what ccxt states of the exchange, and ccxt's variants share it; the
endpoint whose cost budgets an exchange's candle pages is the one ccxt asks for recent candles."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from backend.collection.dialects import implicit_endpoint
from backend.collection.profiles import PROFILES, UNVERIFIED, profile_for
from backend.collection.timeframes import to_ms
from tests.collection.conftest import EXCHANGES, FAKES, NOW, TEST_RATE_LIMIT_MS

NOW_MS = to_ms(NOW)


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_declared_page_is_the_one_ccxt_states_for_spot(name: str) -> None:
    features = getattr(ccxt, name)().features["spot"]["fetchOHLCV"]

    assert PROFILES[name].page == features["limit"]


@pytest.mark.parametrize(
    ("exchange_id", "profile"),
    [("binanceus", "binance"), ("binanceusdm", "binance"), ("myokx", "okx"), ("kucoinfutures", "kucoin")],
)
def test_ccxt_variants_share_the_profile_of_the_class_they_derive_from(exchange_id: str, profile: str) -> None:
    assert profile_for(exchange_id) is PROFILES[profile]


@pytest.mark.parametrize("exchange_id", ["bitstamp", "krakenfutures", "coinbaseexchange", "not-an-exchange"])
def test_any_other_id_is_unverified(exchange_id: str) -> None:
    assert profile_for(exchange_id) is UNVERIFIED
    assert UNVERIFIED.verified is False


def test_reach_counts_back_from_the_open_candle_inside_a_margin() -> None:
    now = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)

    assert PROFILES["kraken"].reach_start(now, "1m") == datetime(2025, 1, 15, 0, 36, tzinfo=UTC)  # 714 back
    assert PROFILES["binance"].reach_start(now, "1m") is None
    assert PROFILES["gate"].beyond_reach("gate", "5m") == "beyond what gate serves: the latest 10,000 5m candles"


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_the_endpoint_budgeted_for_candles_is_the_one_ccxt_asks_for_them(exchange_id: str) -> None:
    async with FAKES[exchange_id](["BTC/USDT"], now_ms=lambda: NOW_MS) as fake:
        options = {**fake.exchange_overrides()[exchange_id], "rateLimit": TEST_RATE_LIMIT_MS}
        exchange = getattr(ccxt_async, exchange_id)(options)
        dialect = profile_for(exchange_id).dialect
        try:
            await exchange.load_markets()
            fake.received.clear()
            candles = await dialect.fetch_ohlcv(exchange, "BTC/USDT", "1m", NOW_MS - 10 * 60_000, 10, {})
            endpoint = implicit_endpoint(exchange, str(dialect.candle_method))
        finally:
            await exchange.close()

    (sent,) = fake.received
    # ccxt's path, its {parameters} filled in
    pattern = "/".join("[^/]+" if part.startswith("{") else re.escape(part) for part in endpoint.path.split("/"))
    assert candles
    assert re.search(f"/{pattern}$", urlsplit(sent).path), (sent, endpoint.path)
