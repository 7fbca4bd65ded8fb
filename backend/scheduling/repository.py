"""SQL of the schedule: claiming due slots, scheduler heartbeats, stale runs, and system jobs.

A config's slots are ``schedule_anchor_at + k * interval``. ``next_run_at`` is the first slot not
yet claimed. A claim takes the latest due slot of each claimable config (``scheduled_for``), counts
the older due slots it collapses (``missed_slots``), moves ``next_run_at`` one interval past
the claimed slot and inserts the slot's run, all in one statement with ``FOR UPDATE SKIP LOCKED``, so that any number of
schedulers share the work and none takes a slot twice. The run-log key on (config, slot) backs
that up if a lock is ever lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from backend.db.pool import Connection, Pool
from backend.runs.totals import COUNT_ENDED_RUNS, ENDED_COLUMNS
from backend.settings import SchedulerBackend

# Due, enabled, not running, unlocked: claim the latest due slot of each, oldest slots first, and
# insert their runs' ``running`` logs (queued: no heartbeat yet), all in one statement.
# $1 = seconds in one interval minute (60), $2 = how many configs at most, $3 = seconds ahead: a
# slot due within them counts as due (schedulers claim early, then start the run at its slot, so
# that the claim's own writes never make a run late). A slot already past collapses the older ones
# into the latest slot not after now; a slot still ahead is claimed as it is, so a horizon longer
# than a config's interval never skips a slot. A slot whose run cannot be inserted (its config began
# a manual run meanwhile, or the slot ran already: the run log's unique keys) comes back with a null
# run_id; the claim still moved ``next_run_at`` past it.
CLAIM_AND_START_SLOTS = """
WITH due AS (
    SELECT id FROM data_collection_configs AS config
    WHERE enabled AND next_run_at <= now() + make_interval(secs => $3)
      AND NOT EXISTS (
          SELECT FROM job_execution_logs AS log WHERE log.config_id = config.id AND log.status = 'running'
      )
    ORDER BY next_run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
slot AS (
    SELECT config.id, config.next_run_at AS first_due, config.schedule_anchor_at AS anchor,
           config.interval_minutes * $1::double precision AS every
    FROM data_collection_configs AS config JOIN due USING (id)
),
latest AS (
    SELECT id, first_due, every,
           greatest(
               first_due, anchor + make_interval(secs => floor(extract(epoch FROM now() - anchor) / every) * every)
           ) AS scheduled_for
    FROM slot
),
claimed AS (
    UPDATE data_collection_configs AS config
    SET next_run_at = latest.scheduled_for + make_interval(secs => latest.every)
    FROM latest
    WHERE config.id = latest.id
    RETURNING config.id AS config_id, config.symbol, config.exchange, latest.scheduled_for,
              greatest(0, round(extract(epoch FROM latest.scheduled_for - latest.first_due) / latest.every))::integer
                  AS missed_slots
),
started AS (
    INSERT INTO job_execution_logs
        (job_name, job_type, config_id, symbol, exchange, status, trigger, scheduled_for, missed_slots)
    SELECT 'collect_data_' || config_id, 'data_collection', config_id, symbol, exchange, 'running', 'schedule',
           scheduled_for, missed_slots
    FROM claimed
    ORDER BY scheduled_for, config_id
    ON CONFLICT DO NOTHING
    RETURNING id, config_id
)
SELECT claimed.config_id, claimed.scheduled_for, claimed.missed_slots, started.id AS run_id
FROM claimed LEFT JOIN started USING (config_id)
ORDER BY claimed.scheduled_for, claimed.config_id
"""
# How long until the next claimable slot (negative when one is due); null without any.
SECONDS_UNTIL_NEXT_SLOT = """
SELECT extract(epoch FROM next_run_at - now())::double precision
FROM data_collection_configs AS config
WHERE enabled AND NOT EXISTS (
    SELECT FROM job_execution_logs AS log WHERE log.config_id = config.id AND log.status = 'running'
)
ORDER BY next_run_at
LIMIT 1
"""
# Live arq workers, the runs they hold (started, or queued and due: those queued for a slot still
# ahead wait for it, not for room), and whether a queued run waits more than $1 seconds past its
# slot (its trigger, for a manual run): then the workers are behind.
ARQ_LOAD = """
SELECT (SELECT count(*) FROM scheduler_heartbeats WHERE backend = 'arq' AND expires_at > now()) AS workers,
       (SELECT count(*) FROM job_execution_logs
        WHERE status = 'running' AND (heartbeat_at IS NOT NULL OR coalesce(scheduled_for, started_at) <= now())
       ) AS runs_in_progress,
       EXISTS (
           SELECT FROM job_execution_logs
           WHERE status = 'running' AND heartbeat_at IS NULL
             AND coalesce(scheduled_for, started_at) < now() - make_interval(secs => $1)
       ) AS behind
"""

BEAT = """
INSERT INTO scheduler_heartbeats (scheduler_id, backend, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (scheduler_id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at
"""
REMOVE_HEARTBEAT = "DELETE FROM scheduler_heartbeats WHERE scheduler_id = $1"
# schedulers whose lease ran out long ago (killed processes); live ones keep their row
FORGET_DEAD_SCHEDULERS = "DELETE FROM scheduler_heartbeats WHERE expires_at < now() - interval '1 day'"

# A started run whose heartbeat stopped: its process died. Whoever sees it first closes it, so that
# no stale "running" row blocks its config; the next slot runs as usual. Every statement that ends
# runs also counts them in the run totals (backend.runs.totals). A queued run (no heartbeat:
# no process started it yet) is not dead; see QUEUED_RUNS and ADOPT_QUEUED_RUNS.
CLOSE_STALE_RUNS = f"""
WITH ended AS (
    UPDATE job_execution_logs
    SET status = 'failed', finished_at = greatest(now(), started_at),
        duration_seconds = round(greatest(0, extract(epoch FROM now() - started_at)), 3),
        error_type = 'Interrupted',
        error_message = 'The process running this job stopped without finishing it (no heartbeat for '
                        || $1::integer || ' s)',
        error_cause = 'the process running it stopped without finishing it'
    WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
    RETURNING id, true AS first_end, {ENDED_COLUMNS}
), {COUNT_ENDED_RUNS}
SELECT id FROM ended
"""
# Runs queued for more than $1 seconds (oldest first, at most $2): arq workers queue them again
# (Redis may have lost the job; a job still queued is not duplicated).
QUEUED_RUNS = """
SELECT id AS run_id, config_id, trigger, scheduled_for,
       extract(epoch FROM now() - started_at)::double precision AS queued_seconds
FROM job_execution_logs
WHERE status = 'running' AND heartbeat_at IS NULL AND started_at < now() - make_interval(secs => $1)
ORDER BY started_at
LIMIT $2
"""
# In-process schedulers start their runs at once, so a run queued for more than $1 seconds lost the
# process that claimed it: one scheduler takes it over (a heartbeat now), at most $2 of them.
ADOPT_QUEUED_RUNS = """
UPDATE job_execution_logs SET heartbeat_at = now()
WHERE id IN (
    SELECT id FROM job_execution_logs
    WHERE status = 'running' AND heartbeat_at IS NULL AND started_at < now() - make_interval(secs => $1)
    ORDER BY started_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""
# The scheduler's own guard when a job ends without closing its row (an error before the run began).
FAIL_RUN_IF_RUNNING = f"""
WITH ended AS (
    UPDATE job_execution_logs
    SET status = 'failed', finished_at = greatest(now(), started_at),
        duration_seconds = round(greatest(0, extract(epoch FROM now() - started_at)), 3),
        error_type = $2, error_message = $3, error_cause = $3
    WHERE id = $1 AND status = 'running'
    RETURNING id, true AS first_end, {ENDED_COLUMNS}
), {COUNT_ENDED_RUNS}
SELECT id FROM ended
"""
DISCARD_RUN = "DELETE FROM job_execution_logs WHERE id = $1 AND status = 'running'"

# System jobs (log retention daily, run history hourly) run once per period across all processes:
# the first scheduler to see the job due moves it to the start of the next period (UTC; $2 the period).
ENSURE_SYSTEM_JOB = "INSERT INTO system_jobs (name, next_run_at) VALUES ($1, now()) ON CONFLICT (name) DO NOTHING"
CLAIM_SYSTEM_JOB = """
UPDATE system_jobs SET next_run_at = date_bin($2, now(), TIMESTAMPTZ '2000-01-01 00:00:00+00') + $2
WHERE name = $1 AND next_run_at <= now()
RETURNING name
"""
START_SYSTEM_RUN = """
INSERT INTO job_execution_logs (job_name, job_type, status, trigger, heartbeat_at)
VALUES ($1, 'cleanup', 'running', 'system', now())
RETURNING id
"""
# one batch of old logs, oldest first; never a running row
DELETE_OLD_LOGS = """
WITH doomed AS (
    SELECT id FROM job_execution_logs
    WHERE started_at < now() - make_interval(days => $1) AND status <> 'running'
    ORDER BY started_at
    LIMIT $2
)
DELETE FROM job_execution_logs WHERE id IN (SELECT id FROM doomed)
"""
REFRESH_SYSTEM_RUN = "UPDATE job_execution_logs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'"
FINISH_SYSTEM_RUN = f"""
WITH ended AS (
    UPDATE job_execution_logs
    SET status = $2, finished_at = greatest(now(), started_at), duration_seconds = round($3::numeric, 3),
        error_type = $4, error_message = $5, error_cause = $5, metadata = $6, heartbeat_at = now()
    WHERE id = $1 AND status = 'running'
    RETURNING id, true AS first_end, {ENDED_COLUMNS}
), {COUNT_ENDED_RUNS}
SELECT id FROM ended
"""


class QueuedRun(msgspec.Struct, kw_only=True, frozen=True):
    """A run inserted for a worker that no process has started yet."""

    run_id: int
    config_id: int | None
    trigger: str
    scheduled_for: datetime | None
    queued_seconds: float


class ClaimedSlot(msgspec.Struct, kw_only=True, frozen=True):
    """A due slot of one config, now owned by the scheduler that claimed it, and its run (None when
    the run could not be inserted)."""

    config_id: int
    scheduled_for: datetime
    missed_slots: int
    run_id: int | None


async def claim_and_start_slots(
    db: Pool | Connection, *, limit: int, interval_unit_seconds: int, ahead_seconds: float = 0.0
) -> list[ClaimedSlot]:
    """Claim up to ``limit`` slots due now (or within ``ahead_seconds``) and insert their runs, in one
    statement; the slots, earliest first."""
    if limit <= 0:
        return []
    rows = await db.fetch(CLAIM_AND_START_SLOTS, interval_unit_seconds, limit, ahead_seconds)
    return [msgspec.convert(dict(row), ClaimedSlot) for row in rows]


async def seconds_until_next_slot(db: Pool | Connection) -> float | None:
    """Seconds until a config can be claimed (0 or less: now); None when nothing is scheduled."""
    seconds: float | None = await db.fetchval(SECONDS_UNTIL_NEXT_SLOT)
    return seconds


class ArqLoad(msgspec.Struct, kw_only=True, frozen=True):
    """The arq workers' side of the schedule, as a tick sees it."""

    workers: int  # live ones
    runs_in_progress: int  # started, or queued and due
    behind: bool  # a queued run waits past its slot: the workers do not keep up

    def claim_limit(self, *, jobs_per_worker: int, keeping_up: int) -> int:
        """How many slots a tick claims: ``keeping_up`` while the workers keep up (claims follow demand),
        and only what the workers have room for once they fall behind, so that due slots stay in the
        database and collapse into one run each (``missed_slots``) instead of queueing up in Redis."""
        if self.workers == 0:
            return 0
        if self.behind:
            return max(0, self.workers * jobs_per_worker - self.runs_in_progress)
        return keeping_up


async def arq_load(db: Pool | Connection, *, late_after_seconds: float) -> ArqLoad:
    """Live arq workers, their runs, and whether a queued run waits ``late_after_seconds`` past its slot."""
    row = await db.fetchrow(ARQ_LOAD, late_after_seconds)
    assert row is not None
    return msgspec.convert(dict(row), ArqLoad)


async def beat(db: Pool | Connection, *, scheduler_id: str, backend: SchedulerBackend, lease_seconds: float) -> None:
    """Record that this scheduler is alive for the next ``lease_seconds``."""
    await db.execute(BEAT, scheduler_id, backend, lease_seconds)


async def remove_heartbeat(db: Pool | Connection, *, scheduler_id: str) -> None:
    await db.execute(REMOVE_HEARTBEAT, scheduler_id)


async def forget_dead_schedulers(db: Pool | Connection) -> None:
    await db.execute(FORGET_DEAD_SCHEDULERS)


async def close_stale_runs(db: Pool | Connection, *, stale_after_seconds: int) -> list[int]:
    """Close runs without a heartbeat for ``stale_after_seconds`` as failed/Interrupted; their ids."""
    return [row["id"] for row in await db.fetch(CLOSE_STALE_RUNS, stale_after_seconds)]


async def queued_runs(db: Pool | Connection, *, older_than_seconds: float, limit: int) -> list[QueuedRun]:
    """Runs no process has started for ``older_than_seconds``, oldest first."""
    rows = await db.fetch(QUEUED_RUNS, older_than_seconds, limit)
    return [msgspec.convert(dict(row), QueuedRun) for row in rows]


async def adopt_queued_runs(db: Pool | Connection, *, older_than_seconds: float, limit: int) -> list[int]:
    """Take over up to ``limit`` runs queued for ``older_than_seconds`` (their process is gone); their ids."""
    if limit <= 0:
        return []
    return [row["id"] for row in await db.fetch(ADOPT_QUEUED_RUNS, older_than_seconds, limit)]


async def fail_run_if_running(db: Pool | Connection, *, run_id: int, error_type: str, error_message: str) -> bool:
    """Close the run as failed unless it already ended; True when this closed it."""
    return await db.fetchval(FAIL_RUN_IF_RUNNING, run_id, error_type, error_message) is not None


async def discard_run(db: Pool | Connection, *, run_id: int) -> None:
    """Delete a run that never began (it could not be queued)."""
    await db.execute(DISCARD_RUN, run_id)


async def claim_system_job(db: Pool | Connection, *, name: str, every: timedelta = timedelta(days=1)) -> bool:
    """True for the one process, across all, that takes this period's run of the system job ``name``."""
    await db.execute(ENSURE_SYSTEM_JOB, name)
    return await db.fetchval(CLAIM_SYSTEM_JOB, name, every) is not None


async def start_system_run(db: Pool | Connection, *, job_name: str) -> int:
    run_id: int = await db.fetchval(START_SYSTEM_RUN, job_name)
    return run_id


async def delete_old_logs(db: Pool | Connection, *, older_than_days: int, batch_size: int) -> int:
    """Delete one batch of logs started more than ``older_than_days`` ago; how many went."""
    status = await db.execute(DELETE_OLD_LOGS, older_than_days, batch_size)
    return int(status.split()[-1])


async def refresh_system_run(db: Pool | Connection, *, run_id: int) -> None:
    await db.execute(REFRESH_SYSTEM_RUN, run_id)


async def finish_system_run(
    db: Pool | Connection,
    *,
    run_id: int,
    succeeded: bool,
    duration_seconds: float,
    metadata: dict[str, Any],
    error_type: str | None = None,
    error_message: str | None = None,
) -> None:
    await db.execute(
        FINISH_SYSTEM_RUN,
        run_id,
        "success" if succeeded else "failed",
        duration_seconds,
        error_type,
        error_message,
        metadata,
    )
