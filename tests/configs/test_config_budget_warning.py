"""A config that takes its exchange over its request budget is answered with a warning (never a refusal)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings
from tests.monitoring.conftest import ADMIN_PATH

CONFIGS = f"{ADMIN_PATH}/configs"


def _body(symbol: str, **changes: Any) -> dict[str, Any]:
    return {"symbol": symbol, "exchange": "binance", "timeframes": ["1m"], "interval_minutes": 1, **changes}


def _budget_warnings(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [warning for warning in config["warnings"] if warning["field"] == "exchange"]


async def test_the_config_that_takes_its_exchange_over_budget_is_created_with_a_warning(
    settings: Settings, admin_headers: dict[str, str]
) -> None:
    # a klines page every 24 s (rateLimit 60 s x cost 0.4): two one-minute series fit, three do not
    slow = replace(settings, exchange_overrides={"binance": {"rateLimit": 60_000}})
    async with AsyncTestClient(app=create_app(slow)) as client:
        created = [await client.post(CONFIGS, json=_body(f"W{n}/USDT"), headers=admin_headers) for n in range(3)]
        disabled = await client.post(CONFIGS, json=_body("OFF/USDT", enabled=False), headers=admin_headers)
        faster = await client.put(
            f"{CONFIGS}/{created[0].json()['id']}", json={"interval_minutes": 60}, headers=admin_headers
        )

    assert [response.status_code for response in created] == [201, 201, 201]
    assert [bool(_budget_warnings(response.json())) for response in created] == [False, False, True]
    [warning] = _budget_warnings(created[2].json())
    assert "binance" in warning["message"]
    assert "missed_slots" in warning["message"]
    assert _budget_warnings(disabled.json()) == []
    assert _budget_warnings(faster.json()) == []  # two series a minute and one an hour fit again
