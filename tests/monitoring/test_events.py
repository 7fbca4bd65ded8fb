"""The events WebSocket, end to end: a real server, a real client, rows written by other connections."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient

from backend.monitoring.events import LISTENER_APPLICATION_NAME
from tests.conftest import TEST_SECRET_KEY, VIEWER_EMAIL
from tests.monitoring.conftest import ADMIN_PATH

EVENTS = f"{ADMIN_PATH}/events"
RECEIVE_TIMEOUT = 10.0


@pytest.fixture
def events_url(served_url: str) -> str:
    return f"ws{served_url.removeprefix('http')}{EVENTS}"


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    event: dict[str, Any] = json.loads(message.data)
    return event


async def test_run_started_and_finished_written_elsewhere_are_pushed(
    events_url: str, viewer_headers: dict[str, str], writer: asyncpg.Connection[Any]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{events_url}?token={_token(viewer_headers)}") as ws,
    ):
        assert await _next_json(ws) == {"type": "ready"}

        log_id = await writer.fetchval(
            "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, trigger) "
            "VALUES ('collect_data_1', 'data_collection', 'BTC/USDT', 'binance', 'running', 'manual') RETURNING id"
        )
        started = await _next_json(ws)
        await writer.execute(
            "UPDATE job_execution_logs SET status = 'success', finished_at = now(), duration_seconds = 1.5, "
            "records_collected = 42 WHERE id = $1",
            log_id,
        )
        finished = await _next_json(ws)

    assert (started["type"], started["log_id"], started["status"], started["symbol"]) == (
        "run_started",
        log_id,
        "running",
        "BTC/USDT",
    )
    assert (finished["type"], finished["log_id"], finished["status"], finished["records_collected"]) == (
        "run_finished",
        log_id,
        "success",
        42,
    )


async def test_a_heartbeat_sends_nothing(
    events_url: str, viewer_headers: dict[str, str], writer: asyncpg.Connection[Any]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{events_url}?token={_token(viewer_headers)}") as ws,
    ):
        await _next_json(ws)
        log_id = await writer.fetchval(
            "INSERT INTO job_execution_logs (job_name, job_type, status) "
            "VALUES ('collect_data_1', 'data_collection', 'running') RETURNING id"
        )
        assert (await _next_json(ws))["type"] == "run_started"

        await writer.execute("UPDATE job_execution_logs SET heartbeat_at = now() WHERE id = $1", log_id)
        await writer.execute(
            "UPDATE job_execution_logs SET status = 'failed', finished_at = now() WHERE id = $1", log_id
        )

        assert (await _next_json(ws))["type"] == "run_finished"


async def test_config_changes_through_the_api_are_pushed(
    events_url: str, client: AsyncTestClient[Litestar], admin_headers: dict[str, str]
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(events_url) as ws:
        await ws.send_str(json.dumps({"token": _token(admin_headers)}))  # the token as the first message
        assert await _next_json(ws) == {"type": "ready"}

        body = {"symbol": "ETH/USDT", "timeframes": ["1h"], "interval_minutes": 5}
        config_id = (await client.post(f"{ADMIN_PATH}/configs", json=body, headers=admin_headers)).json()["id"]
        created = await _next_json(ws)
        await client.post(f"{ADMIN_PATH}/configs/{config_id}/disable", headers=admin_headers)
        disabled = await _next_json(ws)
        await client.delete(f"{ADMIN_PATH}/configs/{config_id}", headers=admin_headers)
        deleted = await _next_json(ws)

    assert created == {
        "type": "config_changed",
        "action": "created",
        "config_id": config_id,
        "symbol": "ETH/USDT",
        "exchange": "binance",
        "enabled": True,
    }
    assert (disabled["action"], disabled["enabled"]) == ("updated", False)
    assert (deleted["action"], deleted["config_id"]) == ("deleted", config_id)


async def test_a_bare_token_as_first_message_works(events_url: str, viewer_headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(events_url) as ws:
        await ws.send_str(_token(viewer_headers))

        assert await _next_json(ws) == {"type": "ready"}


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"])
async def test_a_bad_token_closes_the_connection(events_url: str, token: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{events_url}?token={token}") as ws:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)

    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 1008


async def test_a_bad_first_message_closes_the_connection(events_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(events_url) as ws:
        await ws.send_str('{"token": 42}')
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)

    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_a_lost_listener_connection_comes_back_with_a_resync(
    events_url: str, viewer_headers: dict[str, str], writer: asyncpg.Connection[Any]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{events_url}?token={_token(viewer_headers)}") as ws,
    ):
        await _next_json(ws)

        await writer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            LISTENER_APPLICATION_NAME,
        )
        assert await _next_json(ws) == {"type": "resync"}

        await writer.execute(
            "INSERT INTO job_execution_logs (job_name, job_type, status) "
            "VALUES ('collect_data_1', 'data_collection', 'running')"
        )
        assert (await _next_json(ws))["type"] == "run_started"


async def test_a_deactivated_users_token_closes_the_connection(
    events_url: str, viewer_headers: dict[str, str], writer: asyncpg.Connection[Any]
) -> None:
    await writer.execute("UPDATE users SET is_active = false WHERE email = $1", VIEWER_EMAIL)

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{events_url}?token={_token(viewer_headers)}") as ws,
    ):
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)

    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_a_token_whose_subject_is_beyond_64_bits_closes_the_connection_as_a_bad_token(events_url: str) -> None:
    forged = Token(sub=str(2**63), exp=datetime.now(UTC) + timedelta(minutes=5)).encode(TEST_SECRET_KEY, "HS256")

    async with aiohttp.ClientSession() as session, session.ws_connect(f"{events_url}?token={forged}") as ws:
        message = await ws.receive(timeout=RECEIVE_TIMEOUT)

    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_the_connection_closes_with_1008_when_its_token_expires(
    events_url: str, served_url: str, viewer_headers: dict[str, str], pool: Any
) -> None:
    viewer_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", VIEWER_EMAIL)
    short_lived = Token(sub=str(viewer_id), exp=datetime.now(UTC) + timedelta(seconds=2)).encode(
        TEST_SECRET_KEY, "HS256"
    )

    async with aiohttp.ClientSession() as session, session.ws_connect(f"{events_url}?token={short_lived}") as ws:
        ready = await _next_json(ws)
        closing = await ws.receive(timeout=RECEIVE_TIMEOUT)
        rest = await session.get(f"{served_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {short_lived}"})

    assert ready == {"type": "ready"}
    assert (closing.type, closing.data, closing.extra) == (
        aiohttp.WSMsgType.CLOSE,
        1008,
        "The access token expired: log in again",
    )
    assert rest.status == 401
