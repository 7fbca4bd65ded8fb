"""Shared fixtures: a real PostgreSQL database per test run, the app, and signed-in clients.

The server is TEST_DATABASE_URL, else the local one on 127.0.0.1:5432, else an embedded
pgserver under .data/. Each run creates its own database (so parallel runs never meet)
and every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvicorn
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.auth import repository as users
from backend.db.embedded import start_embedded_postgres
from backend.db.migrate import apply_migrations
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.faults import ThrowawayPostgres, ThrowawayRedis

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_EMAIL = "admin@example.com"
VIEWER_EMAIL = "viewer@example.com"
PASSWORD = "correct horse battery staple"
TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
# the test users' hash of PASSWORD: argon2id at its smallest cost. A login checks a password at the
# cost written in its hash, so it takes microseconds here instead of a quarter of a second.
PASSWORD_HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> str:
    if url := os.environ.get("TEST_DATABASE_URL"):
        return url
    if _reachable("127.0.0.1", 5432):
        return LOCAL_SERVER_URL
    return start_embedded_postgres("test-postgres")


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test run, dropped at the end."""
    name = f"altar_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        await apply_migrations(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def session_pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


# What a TRUNCATE of every table (but the record of migrations) leaves, in a fraction of its time:
# truncated are the tables with rows, those whose ids moved on (RESTART IDENTITY), and those with
# TRUNCATE triggers (what the triggers keep in step ends as a TRUNCATE of every table leaves it).
EMPTY_TABLES = """
DO $$
DECLARE
    t regclass;
    has_rows boolean;
    used text[] := '{}';
BEGIN
    FOR t IN
        SELECT oid FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
          AND relname <> 'schema_migrations'
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', t) INTO has_rows;
        IF has_rows
            OR EXISTS (SELECT FROM pg_trigger WHERE tgrelid = t AND tgtype & 32 <> 0)  -- ON TRUNCATE
            OR EXISTS (
                SELECT FROM pg_depend AS d JOIN pg_class AS s ON s.oid = d.objid
                WHERE d.classid = 'pg_class'::regclass AND d.refobjid = t AND d.deptype IN ('a', 'i')
                  AND CASE WHEN s.relkind = 'S' THEN pg_sequence_last_value(s.oid) IS NOT NULL END
            )
        THEN
            used := used || t::text;
        END IF;
    END LOOP;
    IF cardinality(used) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(used, ', ') || ' RESTART IDENTITY CASCADE';
    END IF;
END
$$
"""


async def empty_tables(pool: Pool) -> None:
    """Empty every table (but the record of migrations), as each test starts."""
    await pool.execute(EMPTY_TABLES)


@pytest.fixture
async def pool(session_pool: Pool) -> Pool:
    """The test database with every table emptied."""
    await empty_tables(session_pool)
    return session_pool


@pytest.fixture
def settings(pool: Pool, database_url: str) -> Settings:
    # no scheduler: tests that need one start it themselves (tests/scheduling)
    return Settings(app_env="test", database_url=database_url, secret_key=TEST_SECRET_KEY, scheduler_backend="off")


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@asynccontextmanager
async def serving(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> AsyncIterator[str]:
    """The app of ``config`` served by uvicorn in this event loop; its base URL while the block lasts.
    A start-up that fails raises here instead of leaving the test waiting."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started:
        if task.done():
            task.result()  # start-up raised: show why
            raise RuntimeError("uvicorn stopped before it started serving")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served_url(settings: Settings) -> AsyncIterator[str]:
    """An app of its own served by uvicorn on a free port of 127.0.0.1 (``http://...``), as another
    web process next to ``client``'s, for the duration of the test."""
    async with serving(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")) as url:
        yield url


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """Another connection, as another process (a scheduler, a worker, the CLI) would write."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def _login(client: AsyncTestClient[Litestar], pool: Pool, email: str, role: users.Role) -> str:
    await users.create_user(pool, email=email, password_hash=PASSWORD_HASH, role=role)
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def admin_headers(client: AsyncTestClient[Litestar], pool: Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _login(client, pool, ADMIN_EMAIL, 'admin')}"}


@pytest.fixture
async def viewer_headers(client: AsyncTestClient[Litestar], pool: Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _login(client, pool, VIEWER_EMAIL, 'viewer')}"}


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (TEST_REDIS_URL or 127.0.0.1:6379). Missing: skip, except in CI."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    parts = urlsplit(url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        message = f"Redis is not reachable at {url}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (required in CI)")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """An embedded PostgreSQL that fault tests may stop and start (never the shared server)."""
    server = ThrowawayPostgres()
    yield server
    server.remove()


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A redis-server of this test's own, started; fault tests may kill it and start it again."""
    server = ThrowawayRedis()
    server.start()
    yield server
    server.remove()
