"""The config routes, their validation and status codes."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool

CONFIGS = "/api/v1/admin/data-collection/configs"
Client = AsyncTestClient[Litestar]
NEW = {"symbol": "ETH/USDT", "exchange": "binance", "timeframes": ["1m", "1h"], "interval_minutes": 10}


async def _create(client: Client, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await client.post(CONFIGS, json={**NEW, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_returns_the_config_with_job_id_and_creator(client: Client, admin_headers: dict[str, str]) -> None:
    me = (await client.get("/api/v1/auth/me", headers=admin_headers)).json()

    config = await _create(client, admin_headers, description="majors")

    assert config["symbol"] == "ETH/USDT"
    assert config["exchange"] == "binance"
    assert config["timeframes"] == ["1m", "1h"]
    assert config["interval_minutes"] == 10
    assert config["enabled"] is True
    assert config["job_id"] == f"collect_data_{config['id']}"
    assert config["created_by"] == me["id"]
    assert config["description"] == "majors"
    assert config["created_at"].endswith("Z")


async def test_create_defaults_exchange_and_enabled(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        CONFIGS,
        json={"symbol": "btc/usdt", "timeframes": ["5m"], "interval_minutes": 1},
        headers=admin_headers,
    )

    assert response.status_code == 201
    assert response.json()["exchange"] == "binance"
    assert response.json()["enabled"] is True
    assert response.json()["symbol"] == "BTC/USDT"


async def test_create_is_stored(client: Client, admin_headers: dict[str, str], pool: Pool) -> None:
    config = await _create(client, admin_headers)

    row = await pool.fetchrow(
        "SELECT symbol, exchange, timeframes FROM data_collection_configs WHERE id = $1", config["id"]
    )

    assert row is not None
    assert dict(row) == {"symbol": "ETH/USDT", "exchange": "binance", "timeframes": ["1m", "1h"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({k: v for k, v in NEW.items() if k != "symbol"}, "symbol"),
        ({**NEW, "symbol": "ETHUSDT"}, "symbol"),
        ({**NEW, "symbol": "ETH/USDT/X"}, "symbol"),
        ({**NEW, "symbol": 42}, "symbol"),
        ({**NEW, "exchange": "not-an-exchange"}, "exchange"),
        ({**NEW, "exchange": "Binance"}, "exchange"),
        ({k: v for k, v in NEW.items() if k != "timeframes"}, "timeframes"),
        ({**NEW, "timeframes": []}, "timeframes"),
        ({**NEW, "timeframes": ["1m", "1m"]}, "timeframes"),
        ({**NEW, "timeframes": ["2m"]}, "timeframes"),
        ({**NEW, "timeframes": "1m"}, "timeframes"),
        ({k: v for k, v in NEW.items() if k != "interval_minutes"}, "interval_minutes"),
        ({**NEW, "interval_minutes": 0}, "interval_minutes"),
        ({**NEW, "interval_minutes": 1441}, "interval_minutes"),
        ({**NEW, "interval_minutes": "ten"}, "interval_minutes"),
        ({**NEW, "enabled": "yes"}, "enabled"),
        ({**NEW, "description": "x" * 201}, "description"),
        ({**NEW, "colour": "blue"}, "colour"),
    ],
)
async def test_invalid_create_is_400_naming_the_field(
    client: Client, admin_headers: dict[str, str], pool: Pool, body: dict[str, Any], field: str
) -> None:
    response = await client.post(CONFIGS, json=body, headers=admin_headers)

    assert response.status_code == 400
    assert field in response.text
    assert await pool.fetchval("SELECT count(*) FROM data_collection_configs") == 0


async def test_an_exchange_in_the_wrong_case_is_told_the_id(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(CONFIGS, json={**NEW, "exchange": "Binance"}, headers=admin_headers)

    assert response.status_code == 400
    assert response.json()["extra"] == [
        {
            "message": "exchange: 'Binance' is not an exchange ccxt knows (ids are lower case: 'binance')",
            "key": "exchange",
            "source": "body",
        }
    ]


async def test_a_whole_number_written_with_a_fraction_is_an_integer(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    created = await client.post(
        CONFIGS, json={**NEW, "interval_minutes": 5.0, "backfill_days": 30.0}, headers=admin_headers
    )
    updated = await client.put(
        f"{CONFIGS}/{created.json()['id']}", json={"interval_minutes": 15.0}, headers=admin_headers
    )

    assert created.status_code == 201
    assert (created.json()["interval_minutes"], created.json()["backfill_days"]) == (5, 30)
    assert updated.status_code == 200
    assert await pool.fetchval("SELECT interval_minutes FROM data_collection_configs") == 15


async def test_a_fractional_interval_is_400(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(CONFIGS, json={**NEW, "interval_minutes": 5.5}, headers=admin_headers)

    assert response.status_code == 400
    assert response.json()["extra"][0]["key"] == "interval_minutes"


async def test_a_malformed_symbol_is_told_what_a_symbol_looks_like_not_the_regex(
    client: Client, admin_headers: dict[str, str]
) -> None:
    created = await client.post(CONFIGS, json={**NEW, "symbol": "ETHUSDT"}, headers=admin_headers)
    config = await _create(client, admin_headers)
    updated = await client.put(f"{CONFIGS}/{config['id']}", json={"symbol": "ETH-USDT"}, headers=admin_headers)

    for response in (created, updated):
        assert response.status_code == 400
        [problem] = response.json()["extra"]
        assert problem["key"] == "symbol"
        assert problem["message"].startswith("Expected BASE/QUOTE as ccxt writes it, e.g. BTC/USDT")
        assert "regex" not in response.text


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
async def test_body_that_is_not_an_object_is_400(client: Client, admin_headers: dict[str, str], body: Any) -> None:
    response = await client.post(CONFIGS, json=body, headers=admin_headers)

    assert response.status_code == 400


async def test_invalid_json_is_400(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(CONFIGS, content=b"{not json", headers=admin_headers)

    assert response.status_code == 400


async def test_description_of_200_characters_is_accepted(client: Client, admin_headers: dict[str, str]) -> None:
    config = await _create(client, admin_headers, description="x" * 200)

    assert len(config["description"]) == 200


async def test_duplicate_exchange_and_symbol_is_409(client: Client, admin_headers: dict[str, str]) -> None:
    await _create(client, admin_headers)

    response = await client.post(CONFIGS, json={**NEW, "symbol": "eth/usdt"}, headers=admin_headers)

    assert response.status_code == 409
    assert "ETH/USDT" in response.json()["detail"]


async def test_same_symbol_on_another_exchange_is_fine(client: Client, admin_headers: dict[str, str]) -> None:
    await _create(client, admin_headers)

    await _create(client, admin_headers, exchange="kraken")


async def test_list_filters_by_enabled_and_exchange_and_pages(client: Client, admin_headers: dict[str, str]) -> None:
    a = await _create(client, admin_headers, symbol="AAA/USDT")
    b = await _create(client, admin_headers, symbol="BBB/USDT", enabled=False)
    c = await _create(client, admin_headers, symbol="CCC/USDT", exchange="kraken")

    async def ids(query: str) -> list[int]:
        response = await client.get(f"{CONFIGS}{query}", headers=admin_headers)
        assert response.status_code == 200
        return [item["id"] for item in response.json()]

    assert await ids("") == [a["id"], b["id"], c["id"]]
    assert await ids("?enabled=true") == [a["id"], c["id"]]
    assert await ids("?enabled=false") == [b["id"]]
    assert await ids("?exchange=kraken") == [c["id"]]
    assert await ids("?skip=1&limit=1") == [b["id"]]


@pytest.mark.parametrize(
    ("query", "name"),
    [("?limit=101", "limit"), ("?limit=0", "limit"), ("?skip=-1", "skip"), ("?enabled=maybe", "enabled")],
)
async def test_bad_list_parameters_are_400_naming_them(
    client: Client, admin_headers: dict[str, str], query: str, name: str
) -> None:
    response = await client.get(f"{CONFIGS}{query}", headers=admin_headers)

    assert response.status_code == 400
    assert name in response.text


async def test_get_one_and_404(client: Client, admin_headers: dict[str, str]) -> None:
    config = await _create(client, admin_headers)

    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).json() == config
    missing = await client.get(f"{CONFIGS}/999999", headers=admin_headers)
    assert missing.status_code == 404
    assert "999999" in missing.json()["detail"]


async def test_partial_update_changes_only_what_is_sent(client: Client, admin_headers: dict[str, str]) -> None:
    config = await _create(client, admin_headers, description="keep me")

    response = await client.put(f"{CONFIGS}/{config['id']}", json={"interval_minutes": 5}, headers=admin_headers)

    assert response.status_code == 200
    updated = response.json()
    assert updated["interval_minutes"] == 5
    assert updated["description"] == "keep me"
    assert updated["timeframes"] == config["timeframes"]
    assert updated["updated_at"] > config["updated_at"]


async def test_update_can_clear_the_description(client: Client, admin_headers: dict[str, str]) -> None:
    config = await _create(client, admin_headers, description="old")

    response = await client.put(f"{CONFIGS}/{config['id']}", json={"description": None}, headers=admin_headers)

    assert response.json()["description"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"timeframes": ["1m", "1m"]}, "timeframes"),
        ({"symbol": "nope"}, "symbol"),
        ({"exchange": "nowhere"}, "exchange"),
        ({"id": 5}, "id"),
    ],
)
async def test_invalid_update_is_400_and_changes_nothing(
    client: Client, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    config = await _create(client, admin_headers)

    response = await client.put(f"{CONFIGS}/{config['id']}", json=body, headers=admin_headers)

    assert response.status_code == 400
    assert field in response.text
    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).json() == config


async def test_update_into_a_duplicate_is_409(client: Client, admin_headers: dict[str, str]) -> None:
    await _create(client, admin_headers, symbol="AAA/USDT")
    other = await _create(client, admin_headers, symbol="BBB/USDT")

    response = await client.put(f"{CONFIGS}/{other['id']}", json={"symbol": "AAA/USDT"}, headers=admin_headers)

    assert response.status_code == 409


async def test_update_unknown_is_404(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.put(f"{CONFIGS}/424242", json={"enabled": False}, headers=admin_headers)

    assert response.status_code == 404


async def test_delete_is_204_then_404_and_keeps_logs(client: Client, admin_headers: dict[str, str], pool: Pool) -> None:
    config = await _create(client, admin_headers)
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, finished_at) "
        "VALUES ($1, 'data_collection', $2, 'ETH/USDT', 'binance', 'success', now())",
        config["job_id"],
        config["id"],
    )

    response = await client.delete(f"{CONFIGS}/{config['id']}", headers=admin_headers)

    assert response.status_code == 204
    assert (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).status_code == 404
    assert (await client.delete(f"{CONFIGS}/{config['id']}", headers=admin_headers)).status_code == 404
    log = await pool.fetchrow("SELECT job_name, config_id FROM job_execution_logs")
    assert log is not None
    assert dict(log) == {"job_name": config["job_id"], "config_id": None}


async def test_disable_and_enable(client: Client, admin_headers: dict[str, str]) -> None:
    config = await _create(client, admin_headers)

    disabled = await client.post(f"{CONFIGS}/{config['id']}/disable", headers=admin_headers)
    enabled = await client.post(f"{CONFIGS}/{config['id']}/enable", headers=admin_headers)

    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    assert enabled.status_code == 200
    assert enabled.json()["enabled"] is True
    assert enabled.json()["updated_at"] >= disabled.json()["updated_at"] > config["updated_at"]


@pytest.mark.parametrize("action", ["enable", "disable", "trigger"])
async def test_actions_on_unknown_config_are_404(client: Client, admin_headers: dict[str, str], action: str) -> None:
    response = await client.post(f"{CONFIGS}/31337/{action}", headers=admin_headers)

    assert response.status_code == 404
