"""GET /health (liveness) and GET /health/ready (dependencies), with the database up and down."""

from __future__ import annotations

from dataclasses import replace

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.faults import ThrowawayPostgres

Client = AsyncTestClient[Litestar]


async def test_liveness_needs_no_auth(client: Client) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_with_database_up(client: Client) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "components": {"database": "ok"}}


async def test_ready_reports_redis_when_configured(settings: Settings, redis_url: str) -> None:
    async with AsyncTestClient(app=create_app(replace(settings, redis_url=redis_url))) as client:
        response = await client.get("/health/ready")

    assert response.json()["components"] == {"database": "ok", "redis": "ok"}


async def test_database_down_keeps_liveness_and_fails_readiness_naming_it(
    throwaway_postgres: ThrowawayPostgres,
) -> None:
    url = await throwaway_postgres.new_database()
    settings = Settings(app_env="test", database_url=url, secret_key=TEST_SECRET_KEY, database_pool_min_size=0)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/health/ready")).status_code == 200

        throwaway_postgres.stop()

        live = await client.get("/health")
        ready = await client.get("/health/ready")
        login = await client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever"})

    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["components"]["database"].startswith("unavailable")
    assert login.status_code == 503
    assert "database" in login.json()["detail"].lower()
    assert "Traceback" not in login.text
