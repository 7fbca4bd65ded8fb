"""A migrated database of the benchmark's own, on the same server the tests use, dropped afterwards."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from backend.db.embedded import start_embedded_postgres
from backend.db.migrate import apply_migrations
from tests.conftest import LOCAL_SERVER_URL, with_database


def _local_postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@asynccontextmanager
async def throwaway_database(prefix: str) -> AsyncIterator[str]:
    """TEST_DATABASE_URL's server, else 127.0.0.1:5432, else the embedded one: a new database's URL."""
    server = os.environ.get("TEST_DATABASE_URL") or (
        LOCAL_SERVER_URL if _local_postgres_answers() else start_embedded_postgres("test-postgres")
    )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await apply_migrations(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
