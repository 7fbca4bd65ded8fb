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
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from backend.collection.compaction import compact_closed_partitions
from backend.collection.exchange_states import forget_ended_pauses
from backend.collection.partitions import PartitionUpkeep, keep_partitions
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.db.pool import Pool
from backend.runs.history import HistoryUpkeep, keep_history
from backend.scheduling import repository
from backend.scheduling.runs import LOG_RETENTION_JOB, RUN_HISTORY_JOB, DueSystemJobs
from backend.settings import Settings

logger = logging.getLogger(__name__)

# small enough that each DELETE is a short transaction, big enough that a million rows take seconds
RETENTION_BATCH_SIZE = 5000


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
    run_id = await repository.start_system_run(pool, job_name=LOG_RETENTION_JOB)
    started = time.monotonic()
    deleted = 0
    partitions = PartitionUpkeep(created=[], dropped=[])
    compacted: list[str] = []
    error_type: str | None = None
    try:
        while True:
            batch = await repository.delete_old_logs(pool, older_than_days=retention_days, batch_size=batch_size)
            deleted += batch
            if batch < batch_size:
                break
            await repository.refresh_system_run(pool, run_id=run_id)
        await repository.forget_dead_schedulers(pool)
        await forget_ended_pauses(pool)
        now = datetime.now(UTC)
        partitions = await keep_partitions(pool, retention_days=candle_retention_days or {}, now=now)
        compacted = await compact_closed_partitions(
            pool, now=now, heartbeat=lambda: repository.refresh_system_run(pool, run_id=run_id)
        )
    except asyncio.CancelledError:
        error_type = "Cancelled"
        raise
    except Exception as exc:
        if is_outage(exc):
            DATABASE_OUTAGE.unreachable(exc)
        else:
            logger.exception("log retention failed")
        error_type = type(exc).__name__
        raise
    finally:
        await asyncio.shield(
            repository.finish_system_run(
                pool,
                run_id=run_id,
                succeeded=error_type is None,
                duration_seconds=time.monotonic() - started,
                metadata={
                    "deleted_logs": deleted,
                    "retention_days": retention_days,
                    "batch_size": batch_size,
                    "created_partitions": partitions.created,
                    "dropped_partitions": partitions.dropped,
                    "compacted_partitions": compacted,
                },
                error_type=error_type,
                error_message=None if error_type is None else f"Stopped ({error_type}) after deleting {deleted} logs",
            )
        )
    logger.info("log retention: %d logs older than %d days deleted", deleted, retention_days)
    return run_id


async def keep_run_history(pool: Pool, *, retention_days: int) -> int:
    """Compact the routine runs older than a day and drop the compacted days older than
    ``retention_days``; the run's id."""
    run_id = await repository.start_system_run(pool, job_name=RUN_HISTORY_JOB)
    started = time.monotonic()
    upkeep = HistoryUpkeep(compacted_runs=0, dropped_partitions=[])
    error_type: str | None = None
    try:
        upkeep = await keep_history(
            pool,
            now=datetime.now(UTC),
            retention_days=retention_days,
            heartbeat=lambda: repository.refresh_system_run(pool, run_id=run_id),
        )
    except asyncio.CancelledError:
        error_type = "Cancelled"
        raise
    except Exception as exc:
        if is_outage(exc):
            DATABASE_OUTAGE.unreachable(exc)
        else:
            logger.exception("run history upkeep failed")
        error_type = type(exc).__name__
        raise
    finally:
        await asyncio.shield(
            repository.finish_system_run(
                pool,
                run_id=run_id,
                succeeded=error_type is None,
                duration_seconds=time.monotonic() - started,
                metadata={
                    "compacted_runs": upkeep.compacted_runs,
                    "dropped_partitions": upkeep.dropped_partitions,
                    "retention_days": retention_days,
                },
                error_type=error_type,
                error_message=None if error_type is None else f"Stopped ({error_type})",
            )
        )
    if upkeep.compacted_runs or upkeep.dropped_partitions:
        logger.info(
            "run history: %d routine runs compacted, %d days dropped",
            upkeep.compacted_runs,
            len(upkeep.dropped_partitions),
        )
    return run_id


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
