"""The asyncpg connection pool shared by the whole process."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import msgspec

if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
else:  # asyncpg's classes are generic only to the type checker
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection


POOL_CLOSE_SECONDS = 3.0


async def _init_connection(conn: Connection) -> None:
    """jsonb columns come back as Python objects and go in from them."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode, format="text"
    )


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _keep_session(_: Connection) -> None:
    """Hand a connection back as it is: asyncpg's default reset sends a query on every release (a
    round trip per pooled query) to undo session state this app never leaves behind. Its rollback
    of an unfinished transaction still runs. So: no session-level ``SET`` (``SET LOCAL`` inside a
    transaction instead), no ``LISTEN`` and no session advisory lock on pooled connections."""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 5, connection_class: type[Connection] = Connection
) -> Pool:
    """The pool; ``connection_class`` (an ``asyncpg.Connection`` subclass) lets the benchmark count statements."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
        connection_class=connection_class,
    )
    assert pool is not None
    return pool


async def close_pool(pool: Pool) -> None:
    """Close gracefully; connections still busy after ``POOL_CLOSE_SECONDS`` (a statement hanging on a
    database that stopped answering) are cut, so that shutdown keeps its time budget."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(POOL_CLOSE_SECONDS):
            await pool.close()  # cancelled, asyncpg terminates the pool
