"""The Litestar application: ``create_app(settings)`` is the one factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, MediaType, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Tag
from litestar.response import Redirect

from backend.auth.controllers import AuthController
from backend.auth.throttle import LoginThrottle, MemoryFailureCounter, RedisFailureCounter
from backend.auth.tokens import create_jwt_auth
from backend.collection.collector import open_collector
from backend.collection.controllers import ConfirmedEmptyController, MarketDataController
from backend.configs.bulk import BulkConfigController
from backend.configs.controllers import ConfigController
from backend.dashboard.routes import dashboard_file, dashboard_page
from backend.db.pool import Pool, create_pool
from backend.db.redis import create_redis
from backend.errors import ConflictError, NotFoundError, UnavailableError
from backend.health import HealthController
from backend.monitoring.controllers import ExecutionLogController, StatsController
from backend.monitoring.events import open_monitoring
from backend.monitoring.websocket import stream_events
from backend.scheduling.lifespan import open_scheduling
from backend.settings import Settings, load_settings

logger = logging.getLogger(__name__)

API_DESCRIPTION = """Collects OHLCV candles from crypto exchanges on admin-defined schedules.

Log in with `POST /api/v1/auth/login`, then press **Authorize** and paste the `access_token`.
"""
# response headers a frontend on another origin must be able to read
EXPOSED_HEADERS = ["X-Total-Count", "ETag", "Content-Disposition"]
TAGS = [
    Tag(name="auth", description="Login and the current user"),
    Tag(name="configs", description="Data-collection configs: what to collect and how often"),
    Tag(name="health", description="Liveness and readiness"),
    Tag(name="market data", description="Stored OHLCV candles (JSON or CSV) and the coverage of each series"),
    Tag(name="execution logs", description="Every run of every job, filtered, paged and exported as CSV"),
    Tag(name="stats", description="Polled aggregates for the dashboard, with ETags for cheap polling"),
]


@get("/docs", include_in_schema=False)
async def docs_redirect() -> Redirect:
    return Redirect("/schema/swagger")


def _error(status_code: int, detail: str) -> Response[dict[str, Any]]:
    return Response({"status_code": status_code, "detail": detail}, status_code=status_code, media_type=MediaType.JSON)


def _not_found(_: Request[Any, Any, Any], exc: NotFoundError) -> Response[dict[str, Any]]:
    return _error(404, str(exc))


def _conflict(_: Request[Any, Any, Any], exc: ConflictError) -> Response[dict[str, Any]]:
    return _error(409, str(exc))


def _unique_violation(_: Request[Any, Any, Any], exc: asyncpg.UniqueViolationError) -> Response[dict[str, Any]]:
    detail = exc.detail or "A row with the same key already exists"
    return _error(409, f"Already exists: {detail}")


def _check_violation(_: Request[Any, Any, Any], exc: asyncpg.CheckViolationError) -> Response[dict[str, Any]]:
    return _error(400, f"Invalid value: violates {exc.constraint_name}")


def _unavailable(_: Request[Any, Any, Any], exc: UnavailableError) -> Response[dict[str, Any]]:
    return _error(503, str(exc))


def _database_down(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.error("database unavailable: %s", type(exc).__name__)
    return _error(503, "The database is unavailable, try again shortly")


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    jwt_auth = create_jwt_auth(settings)

    @asynccontextmanager
    async def open_services(app: Litestar) -> AsyncIterator[None]:
        """Open the pool and Redis; close them in reverse order."""
        assert settings.database_url is not None, "DATABASE_URL must be resolved before the app starts"
        app.state.pool = await create_pool(
            settings.database_url,
            min_size=settings.database_pool_min_size,
            max_size=settings.database_pool_max_size,
        )
        app.state.redis = create_redis(settings.redis_url) if settings.redis_url else None
        counter = RedisFailureCounter(app.state.redis) if app.state.redis else MemoryFailureCounter()
        app.state.login_throttle = LoginThrottle(
            counter=counter,
            max_failures_per_email=settings.login_max_failures_per_email,
            max_failures_per_address=settings.login_max_failures_per_address,
            window_seconds=settings.login_failure_window_seconds,
        )
        try:
            yield
        finally:
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await app.state.pool.close()

    def provide_pool(state: State) -> Pool:
        pool: Pool = state.pool
        return pool

    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            ConfigController,
            BulkConfigController,
            MarketDataController,
            ConfirmedEmptyController,
            ExecutionLogController,
            StatsController,
            stream_events,
            docs_redirect,
            dashboard_page,
            dashboard_file,
        ],
        dependencies={"pool": Provide(provide_pool, sync_to_thread=False)},
        lifespan=[open_services, open_collector, open_monitoring, open_scheduling],
        state=State({"settings": settings, "jwt_auth": jwt_auth}),
        on_app_init=[jwt_auth.on_app_init],
        exception_handlers={
            NotFoundError: _not_found,
            ConflictError: _conflict,
            UnavailableError: _unavailable,
            asyncpg.UniqueViolationError: _unique_violation,
            asyncpg.CheckViolationError: _check_violation,
            asyncpg.PostgresConnectionError: _database_down,
            asyncpg.InterfaceError: _database_down,
            OSError: _database_down,  # asyncpg cannot reach the server (refused, socket gone)
        },
        cors_config=CORSConfig(allow_origins=list(settings.cors_allowed_origins), expose_headers=EXPOSED_HEADERS)
        if settings.cors_allowed_origins
        else None,
        openapi_config=OpenAPIConfig(
            title="Altar Trader Hub",
            version="1.0.0",
            description=API_DESCRIPTION,
            tags=TAGS,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(path=["/", "/swagger"])],
        ),
        logging_config=LoggingConfig(
            root={"level": settings.log_level, "handlers": ["queue_listener"]},
            log_exceptions="always",
        ),
        debug=False,
    )
