"""POST /configs/bulk: enable, disable or delete many configs in one transaction, all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import running_fake_binance
from tests.conftest import serving
from tests.scheduling.conftest import eventually

CONFIGS = "/api/v1/admin/data-collection/configs"
BULK = f"{CONFIGS}/bulk"
Client = AsyncTestClient[Litestar]


async def _create(client: Client, headers: dict[str, str], symbol: str, enabled: bool = True) -> int:
    body = {"symbol": symbol, "timeframes": ["1m"], "interval_minutes": 10, "enabled": enabled}
    response = await client.post(CONFIGS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    config_id: int = response.json()["id"]
    return config_id


async def _enabled(pool: Pool) -> dict[int, bool]:
    return {row["id"]: row["enabled"] for row in await pool.fetch("SELECT id, enabled FROM data_collection_configs")}


async def test_bulk_disable_reports_each_id(client: Client, admin_headers: dict[str, str], pool: Pool) -> None:
    a = await _create(client, admin_headers, "BTC/USDT")
    b = await _create(client, admin_headers, "ETH/USDT", enabled=False)

    response = await client.post(BULK, json={"action": "disable", "ids": [a, b]}, headers=admin_headers)

    assert response.status_code == 200
    assert response.json() == {
        "action": "disable",
        "applied": True,
        "results": [{"id": a, "outcome": "disabled"}, {"id": b, "outcome": "unchanged"}],
    }
    assert await _enabled(pool) == {a: False, b: False}


async def test_bulk_enable(client: Client, admin_headers: dict[str, str], pool: Pool) -> None:
    a = await _create(client, admin_headers, "BTC/USDT", enabled=False)
    b = await _create(client, admin_headers, "ETH/USDT", enabled=False)

    response = await client.post(BULK, json={"action": "enable", "ids": [b, a]}, headers=admin_headers)

    assert [item["outcome"] for item in response.json()["results"]] == ["enabled", "enabled"]
    assert await _enabled(pool) == {a: True, b: True}


async def test_bulk_delete_keeps_the_logs(client: Client, admin_headers: dict[str, str], pool: Pool) -> None:
    a = await _create(client, admin_headers, "BTC/USDT")
    b = await _create(client, admin_headers, "ETH/USDT")
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, config_id, status, finished_at) "
        "VALUES ('collect_data_' || $1::bigint, 'data_collection', $1, 'success', now())",
        a,
    )

    response = await client.post(BULK, json={"action": "delete", "ids": [a, b]}, headers=admin_headers)

    assert response.status_code == 200
    assert [item["outcome"] for item in response.json()["results"]] == ["deleted", "deleted"]
    assert await _enabled(pool) == {}
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE config_id IS NULL") == 1


@pytest.mark.parametrize("action", ["enable", "disable", "delete"])
async def test_an_unknown_id_changes_nothing_and_is_reported(
    client: Client, admin_headers: dict[str, str], pool: Pool, action: str
) -> None:
    a = await _create(client, admin_headers, "BTC/USDT")
    b = await _create(client, admin_headers, "ETH/USDT", enabled=False)
    before = await _enabled(pool)

    response = await client.post(BULK, json={"action": action, "ids": [a, 999_999, b]}, headers=admin_headers)

    assert response.status_code == 404
    assert response.json() == {
        "action": action,
        "applied": False,
        "results": [
            {"id": a, "outcome": "not_applied"},
            {"id": 999_999, "outcome": "not_found"},
            {"id": b, "outcome": "not_applied"},
        ],
    }
    assert await _enabled(pool) == before


async def test_viewer_cannot_bulk(
    client: Client, admin_headers: dict[str, str], viewer_headers: dict[str, str], pool: Pool
) -> None:
    a = await _create(client, admin_headers, "BTC/USDT")

    response = await client.post(BULK, json={"action": "disable", "ids": [a]}, headers=viewer_headers)

    assert response.status_code == 403
    assert await _enabled(pool) == {a: True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "pause", "ids": [1]}, "action"),
        ({"action": "enable", "ids": []}, "ids"),
        ({"action": "enable", "ids": [1, 1]}, "ids"),
        ({"action": "enable", "ids": [0]}, "ids"),
        ({"action": "enable", "ids": list(range(1, 1002))}, "ids"),
        ({"action": "enable"}, "ids"),
        ({"ids": [1]}, "action"),
    ],
)
async def test_invalid_bulk_request_is_400_naming_the_field(
    client: Client, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post(BULK, json=body, headers=admin_headers)

    assert response.status_code == 400
    assert field in response.text


@pytest.fixture
async def scheduling_client(settings: Settings) -> AsyncIterator[Client]:
    """The app with the in-process scheduler, ccxt pointed at a fake Binance."""
    async with running_fake_binance(["BTC/USDT", "ETH/USDT"]) as fake:
        scheduling = replace(
            settings,
            scheduler_backend="inprocess",
            exchange_overrides=fake.exchange_overrides(),
            shutdown_grace_seconds=1,
        )
        async with AsyncTestClient(app=create_app(scheduling)) as test_client:
            yield test_client


async def test_bulk_trigger_starts_a_manual_run_of_each_config_and_reports_the_rest(
    scheduling_client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    btc = await _create(scheduling_client, admin_headers, "BTC/USDT", enabled=False)
    eth = await _create(scheduling_client, admin_headers, "ETH/USDT", enabled=False)
    busy = await _create(scheduling_client, admin_headers, "XRP/USDT", enabled=False)
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, config_id, status, trigger, heartbeat_at) "
        "VALUES ('collect_data_' || $1::bigint, 'data_collection', $1, 'running', 'manual', now())",
        busy,
    )

    response = await scheduling_client.post(
        BULK, json={"action": "trigger", "ids": [btc, 999_999, busy, eth]}, headers=admin_headers
    )

    assert response.status_code == 200
    body = response.json()
    assert body["applied"] is True  # runs were started, for the ids whose outcome is "triggered"
    outcomes = {item["id"]: item["outcome"] for item in body["results"]}
    assert outcomes == {btc: "triggered", 999_999: "not_found", busy: "already_running", eth: "triggered"}
    run_ids = [item["run_id"] for item in body["results"] if item["outcome"] == "triggered"]
    runs = await pool.fetch("SELECT config_id, trigger FROM job_execution_logs WHERE id = ANY($1::bigint[])", run_ids)
    assert sorted((row["config_id"], row["trigger"]) for row in runs) == [(btc, "manual"), (eth, "manual")]


async def test_bulk_trigger_that_starts_no_run_is_not_applied(
    scheduling_client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    response = await scheduling_client.post(
        BULK, json={"action": "trigger", "ids": [999_998, 999_999]}, headers=admin_headers
    )

    assert response.status_code == 200
    assert response.json()["applied"] is False
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'") == 0


async def test_bulk_trigger_without_a_scheduler_is_503(client: Client, admin_headers: dict[str, str]) -> None:
    config_id = await _create(client, admin_headers, "BTC/USDT")

    response = await client.post(BULK, json={"action": "trigger", "ids": [config_id]}, headers=admin_headers)

    assert response.status_code == 503
    assert "SCHEDULER_BACKEND" in response.json()["detail"]


async def test_a_trigger_that_meets_the_configs_deletion_answers_404(
    settings: Settings, admin_headers: dict[str, str], pool: Pool, writer: asyncpg.Connection[Any]
) -> None:
    config_id: int = await pool.fetchval(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled) "
        "VALUES ('BTC/USDT', 'binance', '{1m}', 10, false) RETURNING id"
    )
    app = create_app(replace(settings, scheduler_backend="inprocess", shutdown_grace_seconds=1))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    async with serving(config) as url, httpx.AsyncClient(base_url=url, headers=admin_headers) as http:
        deleting = writer.transaction()
        await deleting.start()
        await writer.execute("DELETE FROM data_collection_configs WHERE id = $1", config_id)
        trigger = asyncio.create_task(http.post(f"{CONFIGS}/{config_id}/trigger"))
        await eventually(lambda: _waiting_for_a_lock(pool))

        await deleting.commit()
        response = await trigger

    assert response.status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'") == 0


async def _waiting_for_a_lock(pool: Pool) -> bool:
    waiting: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO job_execution_logs%'"
    )
    return waiting > 0
