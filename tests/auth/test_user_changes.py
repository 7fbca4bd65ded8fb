"""A user changed by another process (deactivated, deleted, demoted) loses what it lost at once,
although every web process keeps the users its tokens name in memory.

The app is served by uvicorn; the changes are written by another connection, as the CLI or an
operator's SQL would. A viewer's open events stream is closed with 1008 when the viewer loses
access: that close is the sign that the process has heard the change (notifications arrive in
commit order), so the requests after it show what the process now believes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from backend.monitoring.events import LISTENER_APPLICATION_NAME
from tests.conftest import ADMIN_EMAIL, VIEWER_EMAIL

ME = "/api/v1/auth/me"
CONFIGS = "/api/v1/admin/data-collection/configs"
EVENTS = "/api/v1/admin/data-collection/events"
RECEIVE_TIMEOUT = 10.0
NEW_CONFIG = {"symbol": "BTC/USDT", "timeframes": ["1m"], "interval_minutes": 10}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _status(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with http.get(url, headers=headers) as response:
        return response.status


async def _next_text(ws: Any) -> str:
    message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    text: str = message.data
    return text


async def _open_stream(http: aiohttp.ClientSession, served_url: str, headers: dict[str, str]) -> Any:
    ws = await http.ws_connect(f"{served_url}{EVENTS}", headers=headers)
    assert await _next_text(ws) == '{"type": "ready"}'
    return ws


async def _closed_with(ws: Any) -> int | None:
    message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type == aiohttp.WSMsgType.CLOSE, message
    code: int = message.data
    return code


async def test_deactivating_a_user_closes_their_open_event_stream(
    served_url: str, http: aiohttp.ClientSession, viewer_headers: dict[str, str], writer: asyncpg.Connection[Any]
) -> None:
    ws = await _open_stream(http, served_url, viewer_headers)

    await writer.execute("UPDATE users SET is_active = false WHERE email = $1", VIEWER_EMAIL)

    assert await _closed_with(ws) == 1008


@pytest.mark.parametrize(
    "losing_access",
    [
        "UPDATE users SET is_active = false WHERE role = 'viewer'",
        "DELETE FROM users WHERE role = 'viewer'",
        "TRUNCATE users CASCADE",
    ],
    ids=["deactivated", "deleted", "table emptied"],
)
async def test_a_token_kept_in_memory_is_refused_once_its_user_lost_access(
    served_url: str,
    http: aiohttp.ClientSession,
    viewer_headers: dict[str, str],
    writer: asyncpg.Connection[Any],
    losing_access: str,
) -> None:
    assert await _status(http, f"{served_url}{ME}", viewer_headers) == 200  # the process now keeps this user
    ws = await _open_stream(http, served_url, viewer_headers)

    await writer.execute(losing_access)
    await _closed_with(ws)

    assert await _status(http, f"{served_url}{ME}", viewer_headers) == 401


async def test_an_admin_demoted_to_viewer_can_no_longer_write(
    served_url: str,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    writer: asyncpg.Connection[Any],
) -> None:
    assert await _status(http, f"{served_url}{ME}", admin_headers) == 200
    ws = await _open_stream(http, served_url, viewer_headers)

    await writer.execute("UPDATE users SET role = 'viewer' WHERE email = $1", ADMIN_EMAIL)
    await writer.execute("UPDATE users SET is_active = false WHERE email = $1", VIEWER_EMAIL)
    await _closed_with(ws)  # heard after the demotion, which was committed first

    async with http.post(f"{served_url}{CONFIGS}", json=NEW_CONFIG, headers=admin_headers) as response:
        assert response.status == 403


async def test_a_change_unheard_while_the_listener_was_down_is_not_served_from_memory(
    served_url: str,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    writer: asyncpg.Connection[Any],
) -> None:
    assert await _status(http, f"{served_url}{ME}", viewer_headers) == 200
    ws = await _open_stream(http, served_url, admin_headers)
    await writer.execute("SET session_replication_role = replica")  # triggers off: no notification is sent
    await writer.execute("UPDATE users SET is_active = false WHERE email = $1", VIEWER_EMAIL)
    await writer.execute("RESET session_replication_role")

    await writer.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()",
        LISTENER_APPLICATION_NAME,
    )
    assert await _next_text(ws) == '{"type": "resync"}'

    assert await _status(http, f"{served_url}{ME}", viewer_headers) == 401
