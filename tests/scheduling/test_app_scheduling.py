"""The web app with SCHEDULER_BACKEND=inprocess: the real collector, through real ccxt, against a fake
Binance; configs changed through the API; the manual trigger; shutdown."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import FakeBinance
from tests.scheduling.conftest import eventually, login_admin

CONFIGS = "/api/v1/admin/data-collection/configs"
Client = AsyncTestClient[Litestar]
NEW = {"symbol": "BTC/USDT", "timeframes": ["1h"], "interval_minutes": 60, "backfill_days": 1}


@pytest.fixture
def app(collecting_settings: Settings) -> Litestar:
    return create_app(collecting_settings)


async def _create(client: Client, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = await client.post(CONFIGS, json={**NEW, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ended_run(pool: Pool, run_id: int) -> dict[str, Any]:
    sql = "SELECT * FROM job_execution_logs WHERE id = $1 AND status <> 'running'"
    row = await eventually(lambda: pool.fetchrow(sql, run_id))
    return dict(row)


async def test_a_config_created_through_the_api_collects_candles_on_its_own(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    config = await _create(client, admin_headers)

    run_id = await eventually(
        lambda: pool.fetchval("SELECT id FROM job_execution_logs WHERE config_id = $1", config["id"])
    )
    run = await _ended_run(pool, run_id)

    assert run["trigger"] == "schedule"
    assert run["status"] == "success"
    assert run["records_collected"] > 0
    assert await pool.fetchval("SELECT count(*) FROM candles WHERE symbol = 'BTC/USDT'") == run["records_collected"]
    shown = (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).json()
    assert shown["last_run_at"] is not None
    assert shown["next_run_at"] > shown["last_run_at"]


async def test_trigger_answers_202_with_a_message_and_the_run_to_follow(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    config = await _create(client, admin_headers, enabled=False)

    response = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=admin_headers)

    assert response.status_code == 202
    body = response.json()
    assert body["message"] == "Data collection triggered for BTC/USDT"
    assert body["config_id"] == config["id"]
    run = await _ended_run(pool, body["run_id"])
    assert run["trigger"] == "manual"
    assert run["status"] == "success"
    assert run["records_collected"] > 0


async def test_a_disabled_config_can_be_triggered_and_stays_off_the_schedule(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    config = await _create(client, admin_headers, enabled=False)

    response = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=admin_headers)
    await _ended_run(pool, response.json()["run_id"])

    shown = (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).json()
    assert shown["enabled"] is False
    assert shown["next_run_at"] is None
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE trigger = 'schedule'") == 0


async def test_trigger_while_a_run_of_the_config_is_in_progress_is_409(
    client: Client, admin_headers: dict[str, str], pool: Pool, fake: FakeBinance
) -> None:
    fake.latency_seconds = 5
    config = await _create(client, admin_headers, enabled=False)
    first = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=admin_headers)

    second = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=admin_headers)

    assert first.status_code == 202
    assert second.status_code == 409
    assert "already running" in second.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'") == 1
    fake.latency_seconds = 0


async def test_the_exchange_requests_of_this_process_reach_the_totals_at_its_heartbeat(
    client: Client, admin_headers: dict[str, str], pool: Pool, fake: FakeBinance
) -> None:
    config = await _create(client, admin_headers)
    run_id = await eventually(
        lambda: pool.fetchval("SELECT id FROM job_execution_logs WHERE config_id = $1", config["id"])
    )
    await _ended_run(pool, run_id)
    answered = fake.market_requests + fake.time_requests + len(fake.requests)

    async def recorded() -> bool:  # a heartbeat may have added part of them before the run ended
        return await pool.fetchval("SELECT requests FROM exchange_request_totals") == answered

    assert await eventually(recorded)


async def test_trigger_of_an_unknown_config_is_404(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(f"{CONFIGS}/4242/trigger", headers=admin_headers)

    assert response.status_code == 404


async def test_a_viewer_cannot_trigger(
    client: Client, admin_headers: dict[str, str], viewer_headers: dict[str, str]
) -> None:
    config = await _create(client, admin_headers, enabled=False)

    response = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=viewer_headers)

    assert response.status_code == 403


async def test_changing_the_interval_through_the_api_moves_the_next_run(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    config = await _create(client, admin_headers, interval_minutes=600)
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 1 FROM job_execution_logs WHERE config_id IS NOT NULL AND status = 'success'"
        )
    )
    before = (await client.get(f"{CONFIGS}/{config['id']}", headers=admin_headers)).json()

    changed = await client.put(f"{CONFIGS}/{config['id']}", json={"interval_minutes": 5}, headers=admin_headers)

    assert changed.status_code == 200
    assert changed.json()["next_run_at"] < before["next_run_at"]
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) = 2 FROM job_execution_logs WHERE config_id IS NOT NULL AND status = 'success'"
        )
    )


async def test_shutdown_cancels_a_run_that_outlives_the_grace_period(
    collecting_settings: Settings, fake: FakeBinance, pool: Pool
) -> None:
    fake.latency_seconds = 4  # longer than the grace period; the fake's teardown waits for it
    app = create_app(replace(collecting_settings, shutdown_grace_seconds=1))
    async with AsyncTestClient(app=app) as client:
        headers = await login_admin(client, pool)
        await _create(client, headers)
        run_id = await eventually(
            lambda: pool.fetchval("SELECT id FROM job_execution_logs WHERE config_id IS NOT NULL")
        )

    run = await _ended_run(pool, run_id)
    assert run["status"] == "failed"
    assert run["error_type"] == "Cancelled"


async def test_with_the_scheduler_off_a_trigger_is_503(settings: Settings, pool: Pool) -> None:
    async with AsyncTestClient(app=create_app(settings)) as client:
        headers = await login_admin(client, pool)
        config = await _create(client, headers)

        response = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=headers)

    assert response.status_code == 503
    assert "SCHEDULER_BACKEND=off" in response.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'") == 0
