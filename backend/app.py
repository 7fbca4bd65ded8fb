"""The Litestar application: ``create_app(settings)`` is the one factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Contact, Tag

from backend.alerts.controllers import AlertController
from backend.alerts.tasks import open_alerts
from backend.auth.controllers import AuthController
from backend.auth.devices import DeviceCookies
from backend.auth.passwords import PasswordVerifier
from backend.auth.throttle import LoginThrottle, MemoryAttemptCounter, RedisAttemptCounter
from backend.auth.tokens import create_jwt_auth
from backend.collection.collector import open_collector
from backend.collection.controllers import ConfirmedEmptyController, MarketDataController, ReverifyController
from backend.configs.bulk import BulkConfigController
from backend.configs.controllers import ConfigController
from backend.dashboard.routes import dashboard_file, dashboard_page
from backend.db.pool import Pool, close_pool, create_pool
from backend.db.redis import create_redis
from backend.health import HealthController
from backend.monitoring.controllers import ExecutionLogController, StatsController
from backend.monitoring.events import open_monitoring
from backend.monitoring.metrics import MetricsController, http_metrics_config
from backend.monitoring.websocket import stream_events
from backend.scheduling.lifespan import open_scheduling
from backend.settings import Settings, load_settings
from backend.web.asyncapi import asyncapi_document
from backend.web.docs import docs_redirect, swagger_ui, swagger_ui_assets
from backend.web.errors import EXCEPTION_HANDLERS
from backend.web.headers import request_id_first, security_headers
from backend.web.methods import HeadAndOptions
from backend.web.openapi import finish_openapi
from backend.web.requests import ParsedRequest, QueryStringMiddleware

API_DESCRIPTION = """Collects OHLCV candles from crypto exchanges on admin-defined schedules.

Log in with `POST /api/v1/auth/login`, then press **Authorize** and paste the `access_token`.

Every error answers the `Error` body (`status_code`, `detail`, and `extra` naming each invalid field).
Live events come from a WebSocket, described by the AsyncAPI document at
[/schema/asyncapi.json](/schema/asyncapi.json).
"""
# response headers a frontend on another origin must be able to read
EXPOSED_HEADERS = ["X-Total-Count", "X-Total-Count-Exact", "ETag", "Content-Disposition", "X-Request-ID"]
TAGS = [
    Tag(name="auth", description="Login and the current user"),
    Tag(name="configs", description="Data-collection configs: what to collect and how often"),
    Tag(name="health", description="Liveness and readiness"),
    Tag(name="market data", description="Stored OHLCV candles (JSON or CSV) and the coverage of each series"),
    Tag(name="execution logs", description="Every run of every job, filtered, paged and exported as CSV"),
    Tag(name="stats", description="Polled aggregates for the dashboard, with ETags for cheap polling"),
    Tag(name="alerts", description="What the service noticed going wrong: firing, resolved, and the webhook's outbox"),
]


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    """Browsers on the listed origins may call the API; named origins also keep the login's device
    cookie (``credentials: "include"``), which a wildcard never allows."""
    if not origins:
        return None
    return CORSConfig(allow_origins=list(origins), expose_headers=EXPOSED_HEADERS, allow_credentials="*" not in origins)


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
        counter = (
            RedisAttemptCounter(app.state.redis, prefix=f"{settings.arq_queue_name}:login-attempts:")
            if app.state.redis
            else MemoryAttemptCounter()
        )
        app.state.login_throttle = LoginThrottle(
            counter=counter,
            max_failures_per_email_and_address=settings.login_max_failures_per_email_and_address,
            max_failures_per_address=settings.login_max_failures_per_address,
            max_failures_per_email=settings.login_max_failures_per_email,
            max_failures_per_device=settings.login_max_failures_per_device,
            window_seconds=settings.login_failure_window_seconds,
        )
        app.state.password_verifier = PasswordVerifier(
            concurrent=settings.login_concurrent_password_checks,
            wait_seconds=settings.login_password_check_wait_seconds,
        )
        try:
            yield
        finally:
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await close_pool(app.state.pool)

    def provide_pool(state: State) -> Pool:
        pool: Pool = state.pool
        return pool

    app = Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            ConfigController,
            BulkConfigController,
            MarketDataController,
            ConfirmedEmptyController,
            ReverifyController,
            ExecutionLogController,
            StatsController,
            AlertController,
            MetricsController,
            stream_events,
            docs_redirect,
            asyncapi_document,
            swagger_ui_assets(),
            dashboard_page,
            dashboard_file,
        ],
        dependencies={"pool": Provide(provide_pool, sync_to_thread=False)},
        lifespan=[open_services, open_collector, open_monitoring, open_scheduling, open_alerts],
        on_startup=[finish_openapi],
        state=State(
            {"settings": settings, "jwt_auth": jwt_auth, "device_cookies": DeviceCookies.for_settings(settings)}
        ),
        on_app_init=[jwt_auth.on_app_init, request_id_first],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=ParsedRequest,
        middleware=[http_metrics_config().middleware, QueryStringMiddleware],
        before_send=[security_headers(production=settings.is_production)],
        cors_config=_cors(settings.cors_allowed_origins),
        openapi_config=OpenAPIConfig(
            title="Altar Trader Hub",
            version="1.0.0",
            description=API_DESCRIPTION,
            tags=TAGS,
            path="/schema",
            contact=Contact(name="Altar Trader Hub"),
            use_handler_docstrings=True,
            render_plugins=[swagger_ui()],
        ),
        logging_config=None,  # the entry points configure logging (backend.log_config); errors log in web.errors
        debug=False,
    )
    app.asgi_handler = HeadAndOptions(app.asgi_handler, app.routes)  # HEAD wherever GET is, true Allow headers
    return app
