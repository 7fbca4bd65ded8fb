"""A config says whether its exchange is verified, and warns when it asks for more history than the
exchange serves."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

CONFIGS = "/api/v1/admin/data-collection/configs"
Client = AsyncTestClient[Litestar]
KRAKEN_1M_WEEK = {"symbol": "BTC/USDT", "exchange": "kraken", "timeframes": ["1m", "1h"], "interval_minutes": 10}


async def _create(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(CONFIGS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    config: dict[str, Any] = response.json()
    return config


async def test_backfill_past_what_the_exchange_serves_answers_a_warning_on_create_read_and_list(
    client: Client, admin_headers: dict[str, str]
) -> None:
    created = await _create(client, admin_headers, KRAKEN_1M_WEEK)  # backfill_days 7: Kraken serves 12 h of 1m

    read = (await client.get(f"{CONFIGS}/{created['id']}", headers=admin_headers)).json()
    listed = (await client.get(CONFIGS, headers=admin_headers)).json()

    assert created["exchange_verified"] is True
    assert created["warnings"] == [
        {
            "field": "backfill_days",
            "message": "7 days reach past what kraken serves (1m: its latest 720 candles, 12 hours): "
            "older candles are beyond reach and will not be collected",
        }
    ]
    assert read["warnings"] == created["warnings"]
    assert listed[0]["warnings"] == created["warnings"]


async def test_an_update_within_reach_answers_no_warning(client: Client, admin_headers: dict[str, str]) -> None:
    created = await _create(client, admin_headers, KRAKEN_1M_WEEK)

    response = await client.put(f"{CONFIGS}/{created['id']}", json={"timeframes": ["1h"]}, headers=admin_headers)
    widened = await client.put(f"{CONFIGS}/{created['id']}", json={"backfill_days": 60}, headers=admin_headers)

    assert response.status_code == 200
    assert response.json()["warnings"] == []  # 7 days of 1h: 168 candles of the 720 Kraken serves
    assert [w["field"] for w in widened.json()["warnings"]] == ["backfill_days"]


async def test_an_exchange_without_a_profile_is_unverified(client: Client, admin_headers: dict[str, str]) -> None:
    unverified = await _create(client, admin_headers, {**KRAKEN_1M_WEEK, "exchange": "bitstamp"})
    variant = await _create(client, admin_headers, {**KRAKEN_1M_WEEK, "exchange": "binanceus"})

    assert unverified["exchange_verified"] is False
    assert unverified["warnings"] == []  # how far back it serves is not known
    assert variant["exchange_verified"] is True  # ccxt's variant of binance speaks its dialect
