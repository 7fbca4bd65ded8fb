"""Bearer tokens: expired, forged or malformed → 401; a viewer may read but not write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from tests.conftest import TEST_SECRET_KEY

CONFIGS = "/api/v1/admin/data-collection/configs"
Client = AsyncTestClient[Litestar]
NEW_CONFIG = {"symbol": "BTC/USDT", "timeframes": ["1m"], "interval_minutes": 10}


def _token(secret: str, *, sub: str = "1", expires_in: timedelta = timedelta(minutes=5)) -> str:
    now = datetime.now(UTC)
    return jwt.encode({"sub": sub, "iat": now, "exp": now + expires_in}, secret, algorithm="HS256")


async def test_admin_routes_need_a_token(client: Client) -> None:
    response = await client.get(CONFIGS)

    assert response.status_code == 401


async def test_expired_token_is_401(client: Client, admin_headers: dict[str, str]) -> None:
    expired = _token(TEST_SECRET_KEY, expires_in=timedelta(seconds=-60))

    response = await client.get(CONFIGS, headers={"Authorization": f"Bearer {expired}"})

    assert response.status_code == 401


async def test_token_signed_with_another_key_is_401(client: Client, admin_headers: dict[str, str]) -> None:
    forged = _token("someone-elses-secret-key-0123456789abcdef")

    response = await client.get(CONFIGS, headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a.b.c"])
async def test_malformed_authorization_is_401(client: Client, header: str) -> None:
    response = await client.get(CONFIGS, headers={"Authorization": header})

    assert response.status_code == 401


async def test_token_of_a_deleted_user_is_401(client: Client, pool: Pool, admin_headers: dict[str, str]) -> None:
    await pool.execute("DELETE FROM users")

    response = await client.get(CONFIGS, headers=admin_headers)

    assert response.status_code == 401


async def test_viewer_can_read(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.get(CONFIGS, headers=viewer_headers)

    assert response.status_code == 200


async def test_viewer_writing_is_403(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.post(CONFIGS, json=NEW_CONFIG, headers=viewer_headers)

    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


async def test_admin_can_write(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.post(CONFIGS, json=NEW_CONFIG, headers=admin_headers)

    assert response.status_code == 201


async def test_a_token_accepted_before_is_refused_once_it_expires(
    client: Client, admin_headers: dict[str, str]
) -> None:
    me = await client.get("/api/v1/auth/me", headers=admin_headers)
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    token = jwt.encode({"sub": str(me.json()["id"]), "iat": datetime.now(UTC), "exp": expires_at}, TEST_SECRET_KEY)
    assert (await client.get(CONFIGS, headers={"Authorization": f"Bearer {token}"})).status_code == 200

    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 1)  # JWT times are whole seconds

    response = await client.get(CONFIGS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
