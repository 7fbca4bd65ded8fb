"""Telling a database outage from a bad statement, saying so in the log once, and getting a final
write through a short outage."""

from __future__ import annotations

import asyncio
import logging
import time
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


OUTAGE_REMINDER_SECONDS = 60.0  # while the database stays unreachable, the log says so this often


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached, not that the statement was wrong."""
    return isinstance(exc, OUTAGE_ERRORS) and not isinstance(exc, ValueError)


class OutageLog:
    """This process's view of whether the database answers, written to the log once per change.

    Every part of the process that meets an outage (the scheduler, the event listener, runs, a
    request) reports it here instead of logging it: the log gets one WARNING line when the database
    becomes unreachable, a reminder every ``OUTAGE_REMINDER_SECONDS`` while it stays so, and one
    line when something reaches it again, with how long it was away. No traceback: an outage is
    not a bug.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down_since: float | None = None
        self._reminded_at = 0.0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def unreachable(self, exc: BaseException) -> None:
        """Something could not reach the database (``is_outage(exc)``)."""
        now = self._clock()
        if self._down_since is None:
            self._down_since = self._reminded_at = now
            logger.warning("database unreachable (%s: %s); retrying until it is back", type(exc).__name__, _short(exc))
        elif now - self._reminded_at >= OUTAGE_REMINDER_SECONDS:
            self._reminded_at = now
            away = now - self._down_since
            logger.warning("database still unreachable after %.0f s (%s)", away, type(exc).__name__)

    def forget(self) -> None:
        """Start afresh, as a new process does (nothing is logged)."""
        self._down_since = None

    def reachable(self) -> None:
        """Something reached the database."""
        if self._down_since is not None:
            logger.warning("database reachable again after %.0f s", self._clock() - self._down_since)
            self._down_since = None


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or "no detail"


DATABASE_OUTAGE = OutageLog()
"""The one outage log of this process."""


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
            DATABASE_OUTAGE.unreachable(exc)
            await asyncio.sleep(delay)
            continue
        if backoff.failures:
            DATABASE_OUTAGE.reachable()
            logger.debug("%s: written once the database was back (%d attempts)", what, backoff.failures + 1)
        return result
