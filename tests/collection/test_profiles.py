"""Every exchange profile agrees with what ccxt states of the exchange, and ccxt's variants share it."""

from __future__ import annotations

from datetime import UTC, datetime

import ccxt
import pytest

from backend.collection.profiles import PROFILES, UNVERIFIED, profile_for


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
