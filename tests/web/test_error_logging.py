"""Errors an operator can read: one shape for every error, one INFO line per client error, one
WARNING line per 503 (a database outage: one for the process while it lasts), a traceback only for
a real server error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.outage import DATABASE_OUTAGE
from backend.settings import Settings
from tests.web.fake_postgres import refusing_postgres

Client = AsyncTestClient[Litestar]
LOGIN = "/api/v1/auth/login"
CREDENTIALS = {"email": "someone@example.com", "password": "whatever-it-is"}


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "backend.web.errors"]


class _Kept(logging.Handler):
    """Every record of one logger, from the moment it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


OUTAGE_LINES = _Kept()


@pytest.fixture
async def client_of_refusing_database(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Client]:
    """The app against a database that refuses every connection; ``OUTAGE_LINES`` holds what the
    outage log wrote from before the app started (its background tasks may meet the outage first)."""
    sqlstate, message = request.param
    outage_logger = logging.getLogger("backend.db.outage")
    OUTAGE_LINES.records.clear()
    outage_logger.addHandler(OUTAGE_LINES)
    DATABASE_OUTAGE.forget()
    try:
        with refusing_postgres(sqlstate, message) as url:
            app = create_app(replace(settings, database_url=url, database_pool_min_size=0))
            async with AsyncTestClient(app=app) as client:
                yield client
    finally:
        outage_logger.removeHandler(OUTAGE_LINES)


@pytest.mark.parametrize(
    "client_of_refusing_database",
    [("57P03", "the database system is starting up"), ("57P01", "terminating connection due to administrator command")],
    indirect=True,
    ids=["starting-up", "shutting-down"],
)
async def test_a_database_starting_or_shutting_down_answers_503_logged_once_for_the_outage(
    client_of_refusing_database: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    responses = [await client_of_refusing_database.post(LOGIN, json=CREDENTIALS) for _ in range(3)]

    assert {response.status_code for response in responses} == {503}
    assert responses[0].json() == {"status_code": 503, "detail": "The database is unavailable, try again shortly"}
    requests = _records(caplog)
    assert [record.levelno for record in requests] == [logging.INFO] * 3
    assert all("POST /api/v1/auth/login -> 503" in record.getMessage() for record in requests)
    # once, by whichever met the outage first: a request, or a background task as the app started
    [outage] = [record for record in OUTAGE_LINES.records if record.levelno >= logging.WARNING]
    assert outage.getMessage().startswith("database unreachable (")
    assert [record for record in caplog.records if record.exc_info] == []


async def test_a_client_error_is_logged_at_info_in_one_line(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    response = await client.get("/api/v1/admin/data-collection/configs")

    assert response.status_code == 401
    [record] = _records(caplog)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage().startswith("GET /api/v1/admin/data-collection/configs -> 401")


async def test_no_error_is_logged_by_litestar_with_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await client.get("/api/v1/admin/data-collection/configs", headers={"Authorization": "Bearer forged"})

    assert [record for record in caplog.records if record.exc_info] == []


async def test_a_server_error_is_logged_with_its_traceback_and_answers_the_error_shape(
    app: Litestar, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/health/broken", include_in_schema=False)
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.register(broken)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/broken")

    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "Internal Server Error"}
    [record] = _records(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


async def test_a_unique_violation_still_answers_409(app: Litestar) -> None:
    @get("/health/duplicate", include_in_schema=False)
    async def duplicate() -> None:
        raise asyncpg.UniqueViolationError("duplicate key")

    app.register(duplicate)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/duplicate")

    assert response.status_code == 409
