"""The retention jobs.

- Daily (``log_retention``): delete execution logs older than ``LOG_RETENTION_DAYS``, in batches,
  then keep the candle partitions (create the coming ones, drop those past
  ``CANDLE_RETENTION_DAYS_*``) and compact the closed ones (:mod:`backend.collection.compaction`).
- Hourly (``run_history``): compact the routine runs older than a day and drop the compacted days
  past ``LOG_RETENTION_DAYS`` (:mod:`backend.runs.history`).

Each is itself an execution log (job_type ``cleanup``, trigger ``system``). Which process runs it
each period is decided by :func:`backend.scheduling.repository.claim_system_job`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from backend.collection.compaction import compact_closed_partitions
from backend.collection.exchange_states import forget_ended_pauses
from backend.collection.partitions import keep_partitions
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.db.pool import Pool
from backend.runs.history import keep_history
from backend.scheduling import repository
from backend.scheduling.runs import LOG_RETENTION_JOB, RUN_HISTORY_JOB, DueSystemJobs
from backend.settings import Settings

logger = logging.getLogger(__name__)

# small enough that each DELETE is a short transaction, big enough that a million rows take seconds
RETENTION_BATCH_SIZE = 5000


class SystemRun:
    """A system job's own execution log while it runs: what it did so far goes into ``metadata``
    (and ``progress``, a few words for the error message should it stop)."""

    def __init__(self, run_id: int, metadata: dict[str, Any]) -> None:
        self.run_id = run_id
        self.metadata = metadata
        self.progress = ""


@asynccontextmanager
async def logged_system_run(pool: Pool, *, job_name: str, metadata: dict[str, Any]) -> AsyncIterator[SystemRun]:
    """Log the job as a ``cleanup`` run (trigger ``system``) from start to end, whatever happens:
    success, an error (re-raised) or cancellation."""
    run = SystemRun(await repository.start_system_run(pool, job_name=job_name), metadata)
    started = time.monotonic()
    error_type: str | None = None
    try:
        yield run
    except asyncio.CancelledError:
        error_type = "Cancelled"
        raise
    except Exception as exc:
        if is_outage(exc):
            DATABASE_OUTAGE.unreachable(exc)
        else:
            logger.exception("%s failed", job_name)
        error_type = type(exc).__name__
        raise
    finally:
        await asyncio.shield(
            repository.finish_system_run(
                pool,
                run_id=run.run_id,
                succeeded=error_type is None,
                duration_seconds=time.monotonic() - started,
                metadata=run.metadata,
                error_type=error_type,
                error_message=None if error_type is None else f"Stopped ({error_type}){run.progress}",
            )
        )


async def retain_logs(
    pool: Pool,
    *,
    retention_days: int,
    candle_retention_days: Mapping[str, int] | None = None,
    batch_size: int = RETENTION_BATCH_SIZE,
) -> int:
    """Delete logs started more than ``retention_days`` ago, one batch per transaction, then keep the
    candle partitions (``candle_retention_days``: timeframe -> days, absent: kept) and compact the
    closed ones; the run's id."""
    metadata: dict[str, Any] = {
        "deleted_logs": 0,
        "retention_days": retention_days,
        "batch_size": batch_size,
        "created_partitions": [],
        "dropped_partitions": [],
        "compacted_partitions": [],
    }
    async with logged_system_run(pool, job_name=LOG_RETENTION_JOB, metadata=metadata) as run:
        run.progress = " after deleting 0 logs"
        while True:
            batch = await repository.delete_old_logs(pool, older_than_days=retention_days, batch_size=batch_size)
            metadata["deleted_logs"] += batch
            run.progress = f" after deleting {metadata['deleted_logs']} logs"
            if batch < batch_size:
                break
            await repository.refresh_system_run(pool, run_id=run.run_id)
        await repository.forget_dead_schedulers(pool)
        await forget_ended_pauses(pool)
        now = datetime.now(UTC)
        partitions = await keep_partitions(pool, retention_days=candle_retention_days or {}, now=now)
        metadata.update(created_partitions=partitions.created, dropped_partitions=partitions.dropped)
        metadata["compacted_partitions"] = await compact_closed_partitions(
            pool, now=now, heartbeat=lambda: repository.refresh_system_run(pool, run_id=run.run_id)
        )
        # logged before the run's log ends: whoever sees the run ended has its line too
        logger.info("log retention: %d logs older than %d days deleted", metadata["deleted_logs"], retention_days)
    return run.run_id


async def keep_run_history(pool: Pool, *, retention_days: int) -> int:
    """Compact the routine runs older than a day and drop the compacted days older than
    ``retention_days``; the run's id."""
    metadata: dict[str, Any] = {"compacted_runs": 0, "dropped_partitions": [], "retention_days": retention_days}
    async with logged_system_run(pool, job_name=RUN_HISTORY_JOB, metadata=metadata) as run:
        upkeep = await keep_history(
            pool,
            now=datetime.now(UTC),
            retention_days=retention_days,
            heartbeat=lambda: repository.refresh_system_run(pool, run_id=run.run_id),
        )
        metadata.update(compacted_runs=upkeep.compacted_runs, dropped_partitions=upkeep.dropped_partitions)
        if upkeep.compacted_runs or upkeep.dropped_partitions:  # logged before the run's log ends, as above
            logger.info(
                "run history: %d routine runs compacted, %d days dropped",
                upkeep.compacted_runs,
                len(upkeep.dropped_partitions),
            )
    return run.run_id


def due_system_jobs(pool: Pool, due: DueSystemJobs, *, settings: Settings) -> list[Coroutine[Any, Any, int]]:
    """The jobs this process won at its heartbeat, ready to run in the background."""
    jobs = []
    if due.log_retention:
        jobs.append(
            retain_logs(
                pool, retention_days=settings.log_retention_days, candle_retention_days=settings.candle_retention_days
            )
        )
    if due.run_history:
        jobs.append(keep_run_history(pool, retention_days=settings.log_retention_days))
    return jobs
