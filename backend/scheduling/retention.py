"""The daily retention job: delete execution logs older than ``LOG_RETENTION_DAYS``, in batches, then
keep the candle partitions (create the coming ones, drop those past ``CANDLE_RETENTION_DAYS_*``)
and compact the closed ones (:mod:`backend.collection.compaction`).

It is itself an execution log (job_type ``cleanup``, trigger ``system``). Which process runs it
each day is decided by :func:`backend.scheduling.repository.claim_system_job`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from backend.collection.compaction import compact_closed_partitions
from backend.collection.exchange_states import forget_ended_pauses
from backend.collection.partitions import PartitionUpkeep, keep_partitions
from backend.db.pool import Pool
from backend.scheduling import repository
from backend.scheduling.runs import LOG_RETENTION_JOB

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
