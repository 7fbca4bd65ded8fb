"""Telling a database outage from a bad statement, and getting a final write through a short outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from backend.backoff import Backoff

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ERRORS = (
    asyncpg.PostgresConnectionError,  # 08xxx: the connection failed or was closed under the statement
    asyncpg.OperatorInterventionError,  # 57xxx: shutting down, starting up, crashed, statement cancelled
    asyncpg.InterfaceError,  # the connection is closed (except bad arguments, which are ValueErrors)
    asyncpg.InternalClientError,  # the connection broke while the driver was mid-conversation
    asyncpg.TooManyConnectionsError,  # 53300: every connection slot is taken, for now
    OSError,  # refused, unreachable, timed out
)
RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
# at shutdown a final write gets this long to get through; after that, stale-run detection closes the run
SHUTDOWN_WRITE_SECONDS = 2.0


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached, not that the statement was wrong."""
    return isinstance(exc, OUTAGE_ERRORS) and not isinstance(exc, ValueError)


async def write_through_outage(
    write: Callable[[], Awaitable[T]], *, what: str, give_up_after: float | None = None
) -> T:
    """``write()``, tried again while PostgreSQL is unreachable (every 0.2 s at first, then at most
    every 5 s) until it gets through; with ``give_up_after``, the last outage error is raised once
    that many seconds have passed. Any other error is raised at once."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    backoff = Backoff(first_seconds=RETRY_FIRST_SECONDS, max_seconds=RETRY_MAX_SECONDS)
    while True:
        try:
            result = await write()
        except Exception as exc:
            if not is_outage(exc):
                raise
            delay = backoff.next_delay()
            if deadline is not None and loop.time() + delay > deadline:
                raise
            if backoff.failures == 1:
                logger.warning("%s: database unavailable (%s); retrying until it is back", what, type(exc).__name__)
            await asyncio.sleep(delay)
            continue
        if backoff.failures:
            logger.info("%s: written once the database was back (%d attempts)", what, backoff.failures + 1)
        return result
