"""What both backends do around one run: claim due slots and start their runs, start a manual run,
run a started run to its end, and the periodic housekeeping (heartbeat, dead runs, daily jobs).

The job boundary is :data:`RunJob`: a callable that takes the id of a ``running`` execution log
and carries the run to its end. Production passes the collector's ``execute_run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
import msgspec

from backend.collection.exchange_states import ExchangeActivity
from backend.db.outage import DATABASE_OUTAGE, SHUTDOWN_WRITE_SECONDS, is_outage, write_through_outage
from backend.db.pool import Pool
from backend.errors import UnavailableError
from backend.runs.repository import start_run, why_not_started
from backend.scheduling import repository
from backend.settings import SchedulerBackend, Settings

logger = logging.getLogger(__name__)

RunJob = Callable[[int], Awaitable[object]]
"""Carries the started run with this id to its end (logs it, keeps its heartbeat, honours cancellation)."""
Clock = Callable[[], datetime]

LOG_RETENTION_JOB = "log_retention"  # daily
RUN_HISTORY_JOB = "run_history"  # hourly
# a scheduler is presumed dead after this many missed heartbeats
MISSED_BEATS_BEFORE_DEAD = 3


class DueSystemJobs(msgspec.Struct, kw_only=True, frozen=True):
    """The system jobs this process won for now (the caller starts them: see ``backend.scheduling.retention``)."""

    log_retention: bool
    run_history: bool


class StartedRun(msgspec.Struct, kw_only=True, frozen=True):
    """A scheduled run whose ``running`` log was just inserted for its slot."""

    run_id: int
    config_id: int
    scheduled_for: datetime


class TriggeredRun(msgspec.Struct, kw_only=True, frozen=True):
    """A manual run that was started: its execution log, and its arq job when a worker runs it."""

    run_id: int
    arq_job_id: str | None = None


class ManualTrigger(Protocol):
    """Starts a manual run of a config now (``POST /configs/{id}/trigger``), in whichever backend runs it."""

    async def trigger(self, config_id: int) -> TriggeredRun:
        """ConflictError while the config runs, NotFoundError for an unknown config, UnavailableError
        when runs cannot start now (the message names what is missing)."""
        ...


class SchedulingOff:
    """``SCHEDULER_BACKEND=off``: this service runs no collections, so a trigger cannot be accepted."""

    async def trigger(self, config_id: int) -> TriggeredRun:
        raise UnavailableError("SCHEDULER_BACKEND=off: this service runs no collections; the trigger was not accepted")


def new_scheduler_id() -> str:
    """Host and process, plus a random suffix so a restarted process with the same pid is new."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def claim_and_start_runs(
    pool: Pool, *, limit: int, interval_unit_seconds: int, ahead_seconds: float = 0.0
) -> list[StartedRun]:
    """Claim up to ``limit`` due slots (or due within ``ahead_seconds``) and insert their ``running``
    logs, in one statement.

    A slot whose run cannot start (its config began a manual run meanwhile, or the slot ran
    already) is left out; the claim still moved ``next_run_at`` past it.
    """
    claimed = await repository.claim_and_start_slots(
        pool, limit=limit, interval_unit_seconds=interval_unit_seconds, ahead_seconds=ahead_seconds
    )
    started: list[StartedRun] = []
    for slot in claimed:
        if slot.run_id is None:
            why = await why_not_started(pool, config_id=slot.config_id, scheduled_for=slot.scheduled_for)
            logger.info("slot %s of config %s not started: %s", slot.scheduled_for, slot.config_id, why)
            continue
        if slot.missed_slots:
            logger.info("config %s: %s missed slots collapsed into one run", slot.config_id, slot.missed_slots)
        started.append(StartedRun(run_id=slot.run_id, config_id=slot.config_id, scheduled_for=slot.scheduled_for))
    return started


async def start_manual_run(pool: Pool, *, config_id: int) -> int:
    """Insert the ``running`` log of a manual run; ConflictError (409) while the config runs already."""
    return await start_run(pool, config_id=config_id, trigger="manual")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def wait_for_slot(not_before: datetime, *, clock: Clock = utc_now) -> None:
    """Return once ``clock`` reads ``not_before`` or later, never before: a sleep is measured on
    another clock than the wall clock the slot is on, and the wall clock may be stepped back
    meanwhile, so the clock is read again after each sleep."""
    while (seconds := (not_before - clock()).total_seconds()) > 0:  # noqa: ASYNC110  (a clock, not an event)
        await asyncio.sleep(seconds)


async def run_to_end(
    pool: Pool, run_job: RunJob, run_id: int, *, not_before: datetime | None = None, clock: Clock = utc_now
) -> None:
    """Run ``run_job`` on a started run, never before ``not_before`` (its slot) by ``clock``;
    whatever happens, its log never stays ``running``.

    The collector closes its own log (also when cancelled or timed out); this closes it only when
    the job failed before it could, so that no stale "already running" state remains.
    """
    try:
        if not_before is not None:
            await wait_for_slot(not_before, clock=clock)
        await run_job(run_id)
    except asyncio.CancelledError:
        closing = _close_if_running(
            pool, run_id, "Cancelled", "The run was cancelled at shutdown", give_up_after=SHUTDOWN_WRITE_SECONDS
        )
        await asyncio.shield(closing)
        raise
    except Exception as exc:
        if is_outage(exc):
            DATABASE_OUTAGE.unreachable(exc)
            message = "The run stopped: the database was unreachable"
        else:
            logger.exception("run %s failed outside the collector", run_id)
            message = "The run stopped on an unexpected error; the server log has the details"
        await _close_if_running(pool, run_id, type(exc).__name__, message)


async def _close_if_running(
    pool: Pool, run_id: int, error_type: str, error_message: str, *, give_up_after: float | None = None
) -> None:
    """Close the run's log unless the collector did, through a database outage; failing that (at
    shutdown, after ``give_up_after`` seconds), stale-run recovery will."""
    try:
        await write_through_outage(
            lambda: repository.fail_run_if_running(
                pool, run_id=run_id, error_type=error_type, error_message=error_message
            ),
            what=f"closing run {run_id}",
            give_up_after=give_up_after,
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
        logger.warning("run %s: could not close its log (%s); stale-run recovery will", run_id, type(exc).__name__)


async def housekeeping(
    pool: Pool,
    *,
    settings: Settings,
    scheduler_id: str,
    backend: SchedulerBackend,
    exchange_activity: ExchangeActivity | None = None,
) -> DueSystemJobs:
    """One heartbeat: record this scheduler alive, add this process's exchange requests to the
    totals, close runs whose process died, and say which system jobs this process won (today's
    log retention, this hour's run history): the caller starts them."""
    await repository.beat(
        pool,
        scheduler_id=scheduler_id,
        backend=backend,
        lease_seconds=settings.scheduler_heartbeat_seconds * MISSED_BEATS_BEFORE_DEAD,
    )
    if exchange_activity is not None:
        try:
            await exchange_activity.flush()
        except Exception as exc:
            logger.warning("exchange request counts not recorded now (%s); next heartbeat", type(exc).__name__)
    closed = await repository.close_stale_runs(pool, stale_after_seconds=settings.stale_run_seconds)
    if closed:
        logger.warning("closed %d runs whose process stopped as Interrupted: %s", len(closed), closed)
    return DueSystemJobs(
        log_retention=await repository.claim_system_job(pool, name=LOG_RETENTION_JOB),
        run_history=await repository.claim_system_job(pool, name=RUN_HISTORY_JOB, every=timedelta(hours=1)),
    )
