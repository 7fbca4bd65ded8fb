"""Liveness and readiness for the platform's health checks."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get

CHECK_TIMEOUT_SECONDS = 2.0


class Health(msgspec.Struct):
    status: str
    components: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    security = []

    @get("/", operation_id="liveness")
    async def liveness(self) -> Health:
        """The process answers. Touches no database."""
        return Health(status="ok")

    @get("/ready", operation_id="readiness", responses={})
    async def readiness(self, request: Request[Any, Any, Any]) -> Response[Health]:
        """PostgreSQL answers, and Redis when configured; 503 names the one that does not."""
        state = request.app.state
        components = {"database": await _check(state.pool.fetchval("SELECT 1"))}
        if state.redis is not None:
            components["redis"] = await _check(state.redis.ping())
        ok = all(value == "ok" for value in components.values())
        return Response(
            Health(status="ok" if ok else "unavailable", components=components),
            status_code=200 if ok else 503,
        )


async def _check(probe: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await probe
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"
    return "ok"
