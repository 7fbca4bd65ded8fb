"""The in-process scheduler (``SCHEDULER_BACKEND=inprocess``): one asyncio task in the web process.

It claims each slot a tenth of a second before it is due and starts the run at the slot, so the
claim's writes never make a run late. It sleeps until the next slot can be claimed (exactly: no
floor), a PostgreSQL ``NOTIFY scheduler_wakeup`` (a config
created, changed or deleted by any process, or a run ended while its next slot waits), a run of
its own ending while it was full, or its heartbeat (every ``SCHEDULER_HEARTBEAT_SECONDS``, also
the safety-net re-check). It never polls in between. Each run is a task of its own, at most
``MAX_CONCURRENT_JOBS`` at once; shutdown stops claiming, waits ``SHUTDOWN_GRACE_SECONDS`` for the
runs, then cancels the rest (their logs end ``failed``/``Cancelled``, written within 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import asyncpg

from backend.backoff import Backoff
from backend.collection.exchange_states import ExchangeActivity
from backend.db.outage import DATABASE_OUTAGE, SHUTDOWN_WRITE_SECONDS, is_outage
from backend.db.pool import Connection, Pool
from backend.errors import UnavailableError
from backend.scheduling import repository
from backend.scheduling.retention import due_system_jobs
from backend.scheduling.runs import (
    Clock,
    RunJob,
    TriggeredRun,
    claim_and_start_runs,
    housekeeping,
    new_scheduler_id,
    run_to_end,
    start_manual_run,
    utc_now,
)
from backend.settings import Settings
from backend.waiting import cancel_and_wait, wait_for_event

logger = logging.getLogger(__name__)

WAKEUP_CHANNEL = "scheduler_wakeup"  # notified by the triggers of db/migrations/0003_scheduling.sql
# when a due slot was just taken by another scheduler, look again after this long rather than spin
CONTENDED_SLOT_RETRY_SECONDS = 0.05
# ... first after this long (its claim commits in milliseconds), doubling up to the above while it lasts
FIRST_CONTENDED_RETRY_SECONDS = 0.002
# slots are claimed this long before they are due and their runs start at the slot: the claim's
# writes (a transaction, triggers, a commit) happen before the slot instead of making the run late
CLAIM_AHEAD_SECONDS = 0.1
# after an error the loop beats again this soon, then backs off up to SCHEDULER_HEARTBEAT_SECONDS
FIRST_RETRY_SECONDS = 0.5
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# a claim chosen as the victim of a deadlock or serialization conflict: nothing was claimed, try again
TRANSIENT_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class InProcessScheduler:
    """Claims due slots of the shared schedule and runs them as tasks of this process."""

    def __init__(
        self,
        pool: Pool,
        *,
        settings: Settings,
        run_job: RunJob,
        exchange_activity: ExchangeActivity | None = None,
        clock: Clock = utc_now,
    ) -> None:
        assert settings.database_url is not None
        self._pool = pool
        self._clock = clock  # the wall clock a run waits on until its slot
        self._settings = settings
        self._run_job = run_job
        self._exchange_activity = exchange_activity
        self.scheduler_id = new_scheduler_id()
        self._runs: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._full = False
        self._loop_task: asyncio.Task[None] | None = None
        self._accepting = False
        self._listener: Connection | None = None
        self._claim_began = 0.0  # loop time of the latest claim
        self._contended_retry = FIRST_CONTENDED_RETRY_SECONDS

    @property
    def runs_in_progress(self) -> int:
        return len(self._runs)

    async def start(self) -> None:
        """Beat once (so /status sees it at once), listen for wake-ups, and start the loop."""
        await self._listen()
        self._loop_task = asyncio.create_task(self._schedule(), name=f"scheduler {self.scheduler_id}")
        self._accepting = True
        logger.info("in-process scheduler %s started", self.scheduler_id)

    async def stop(self) -> None:
        """Stop claiming; let runs finish within the grace period, then cancel them."""
        self._accepting = False
        if self._loop_task is not None:
            await cancel_and_wait([self._loop_task])
            self._loop_task = None
        if self._runs:
            logger.info("waiting up to %ss for %d runs", self._settings.shutdown_grace_seconds, len(self._runs))
            _, pending = await asyncio.wait(set(self._runs), timeout=self._settings.shutdown_grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                # cancelled runs write their logs within SHUTDOWN_WRITE_SECONDS; nothing waits longer
                _, abandoned = await asyncio.wait(pending, timeout=SHUTDOWN_WRITE_SECONDS + 1)
                if abandoned:
                    logger.warning("%d runs could not log their end; stale-run detection will", len(abandoned))
        if self._listener is not None:
            with contextlib.suppress(*DATABASE_ERRORS, TimeoutError):
                await self._listener.close(timeout=SHUTDOWN_WRITE_SECONDS)
            self._listener = None
        with contextlib.suppress(*DATABASE_ERRORS, TimeoutError):
            async with asyncio.timeout(SHUTDOWN_WRITE_SECONDS):
                await repository.remove_heartbeat(self._pool, scheduler_id=self.scheduler_id)
        logger.info("in-process scheduler %s stopped", self.scheduler_id)

    async def trigger(self, config_id: int) -> TriggeredRun:
        """Start a manual run now, whatever the schedule and the number of runs in progress."""
        if not self._accepting:
            raise UnavailableError("The scheduler is shutting down; try again in a moment")
        run_id = await start_manual_run(self._pool, config_id=config_id)
        self._spawn(run_id)
        return TriggeredRun(run_id=run_id)

    async def _schedule(self) -> None:
        """Beat, claim, sleep; forever. Whatever an iteration raises is logged, backed off from, and
        followed by a new beat: the loop only ends when ``stop()`` cancels it."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        backoff = Backoff(first_seconds=FIRST_RETRY_SECONDS, max_seconds=self._settings.scheduler_heartbeat_seconds)
        while True:
            self._wake.clear()
            try:
                if loop.time() >= next_beat:
                    await self._beat()
                    next_beat = loop.time() + self._settings.scheduler_heartbeat_seconds
                await self._claim()
                delay = await self._delay(until_beat=next_beat - loop.time())
                backoff.reset()
                DATABASE_OUTAGE.reachable()
            except TRANSIENT_ERRORS as exc:
                logger.info("scheduler: claim rolled back (%s); retrying at once", type(exc).__name__)
                delay = CONTENDED_SLOT_RETRY_SECONDS
            except Exception as exc:
                delay = backoff.next_delay()
                if is_outage(exc):
                    DATABASE_OUTAGE.unreachable(exc)
                elif isinstance(exc, DATABASE_ERRORS):
                    logger.warning(
                        "scheduler: database error (%s: %s); beating again in %.1f s", type(exc).__name__, exc, delay
                    )
                else:
                    logger.exception("scheduler: unexpected error; beating again in %.1f s", delay)
            if delay > 0:
                await wait_for_event(self._wake, delay)

    async def _beat(self) -> None:
        if self._listener is None or self._listener.is_closed():
            await self._listen()
        due = await housekeeping(
            self._pool,
            settings=self._settings,
            scheduler_id=self.scheduler_id,
            backend="inprocess",
            exchange_activity=self._exchange_activity,
        )
        for job in due_system_jobs(self._pool, due, settings=self._settings):
            self._track(asyncio.create_task(self._system_job(job), name="system job"))
        orphans = await repository.adopt_queued_runs(
            self._pool,
            older_than_seconds=self._settings.stale_run_seconds,
            limit=self._settings.max_concurrent_jobs - len(self._runs),
        )
        for run_id in orphans:
            logger.warning("run %s was queued by a process that stopped before starting it: running it here", run_id)
            self._spawn(run_id)

    async def _system_job(self, job: Coroutine[Any, Any, int]) -> None:
        try:
            await job
        except Exception as exc:
            if is_outage(exc):
                DATABASE_OUTAGE.unreachable(exc)
            else:
                logger.exception("system job failed")

    async def _claim(self) -> None:
        self._claim_began = asyncio.get_running_loop().time()
        free = self._settings.max_concurrent_jobs - len(self._runs)
        started = await claim_and_start_runs(
            self._pool,
            limit=free,
            interval_unit_seconds=self._settings.interval_unit_seconds,
            ahead_seconds=CLAIM_AHEAD_SECONDS,
        )
        for run in started:
            self._spawn(run.run_id, not_before=run.scheduled_for)
        self._full = len(self._runs) >= self._settings.max_concurrent_jobs

    async def _delay(self, *, until_beat: float) -> float:
        """Seconds to sleep: until the next slot can be claimed (however close), at most until the next beat.

        A claimable slot that the claim did not take either became claimable after the claim looked
        (take it now) or is being claimed by another scheduler: then look again shortly, backing off
        while that lasts.
        """
        if self._full:
            return max(0.0, until_beat)  # a run ending wakes us
        until_due = await repository.seconds_until_next_slot(self._pool)
        if until_due is None:
            return max(0.0, until_beat)
        seconds = until_due - CLAIM_AHEAD_SECONDS
        if seconds > 0 or -seconds < asyncio.get_running_loop().time() - self._claim_began:
            self._contended_retry = FIRST_CONTENDED_RETRY_SECONDS
            return max(0.0, min(seconds, until_beat))
        delay = self._contended_retry
        self._contended_retry = min(2 * delay, CONTENDED_SLOT_RETRY_SECONDS)
        return min(delay, max(0.0, until_beat))

    def _spawn(self, run_id: int, *, not_before: datetime | None = None) -> None:
        run = run_to_end(self._pool, self._run_job, run_id, not_before=not_before, clock=self._clock)
        self._track(asyncio.create_task(run, name=f"run {run_id}"))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._runs.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._runs.discard(task)
        if self._full:
            self._wake.set()

    async def _listen(self) -> None:
        """A connection of its own (not the pool's) that LISTENs for wake-ups from any process."""
        assert self._settings.database_url is not None
        try:
            self._listener = await asyncpg.connect(self._settings.database_url)
            await self._listener.add_listener(WAKEUP_CHANNEL, self._on_notify)
        except DATABASE_ERRORS as exc:
            self._listener = None
            if is_outage(exc):
                DATABASE_OUTAGE.unreachable(exc)
            else:
                logger.warning("scheduler: cannot LISTEN (%s); relying on the periodic re-check", type(exc).__name__)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()
