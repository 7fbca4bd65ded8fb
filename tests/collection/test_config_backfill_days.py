"""Configs carry ``backfill_days``: how much history the first run fetches."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

CONFIGS = "/api/v1/admin/data-collection/configs"
BODY = {"symbol": "BTC/USDT", "timeframes": ["1h"], "interval_minutes": 10}


async def test_backfill_days_defaults_to_seven(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    response = await client.post(CONFIGS, json=BODY, headers=admin_headers)

    assert response.status_code == 201
    assert response.json()["backfill_days"] == 7


async def test_backfill_days_can_be_set_and_updated(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    created = (await client.post(CONFIGS, json={**BODY, "backfill_days": 30}, headers=admin_headers)).json()

    response = await client.put(f"{CONFIGS}/{created['id']}", json={"backfill_days": 365}, headers=admin_headers)

    assert created["backfill_days"] == 30
    assert response.json()["backfill_days"] == 365


async def test_backfill_days_out_of_range_is_refused_naming_the_field(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    response = await client.post(CONFIGS, json={**BODY, "backfill_days": 0}, headers=admin_headers)

    assert response.status_code == 400
    assert "backfill_days" in response.text
