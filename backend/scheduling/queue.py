"""The arq queue as both sides see it: job names and ids, and enqueueing a started run.

Job ids are deterministic, so a run is never queued twice: a scheduled run by its config and slot
(a second claim of the slot, were it possible, would find the job there), a manual run by its id.
They start with the queue's name, so that deployments sharing one Redis never meet. A job leaves
Redis when its run ends (no result is kept): a run is queued again only while its log says it
waits for a worker (``requeue_waiting_runs``), and an ended run never does.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from backend.db.pool import Pool
from backend.errors import UnavailableError
from backend.scheduling import repository
from backend.scheduling.repository import QueuedRun
from backend.scheduling.runs import StartedRun, TriggeredRun, start_manual_run

logger = logging.getLogger(__name__)

COLLECT_JOB = "collect"
REDIS_ERRORS = (RedisError, OSError)
REQUEUE_BATCH = 500  # queued runs checked per heartbeat
ARQ_TIME_RESOLUTION = timedelta(milliseconds=1)


def scheduled_job_id(queue_name: str, run: StartedRun) -> str:
    return _slot_job_id(queue_name, run.config_id, run.scheduled_for)


def _slot_job_id(queue_name: str, config_id: int, scheduled_for: datetime) -> str:
    slot = scheduled_for.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{queue_name}:collect_data_{config_id}:slot:{slot}"


def manual_job_id(queue_name: str, config_id: int | None, run_id: int) -> str:
    return f"{queue_name}:collect_data_{config_id}:run:{run_id}"


def queued_run_job_id(queue_name: str, run: QueuedRun) -> str:
    """The id the run's job was queued with (a config deleted meanwhile: a manual-style id of its own)."""
    if run.trigger == "schedule" and run.config_id is not None and run.scheduled_for is not None:
        return _slot_job_id(queue_name, run.config_id, run.scheduled_for)
    return manual_job_id(queue_name, run.config_id, run.run_id)


async def enqueue_run(
    redis: ArqRedis, *, run_id: int, job_id: str, queue_name: str, not_before: datetime | None = None
) -> bool:
    """Queue the ``collect`` job of a queued run, to start at ``not_before`` (its slot, which the job
    also carries, so that the worker need not read it) or at once; False when a job with this id is
    there already."""
    # arq keeps whole milliseconds: a millisecond later, never before the slot
    defer_until = None if not_before is None else not_before + ARQ_TIME_RESOLUTION
    job = await redis.enqueue_job(
        COLLECT_JOB, run_id, not_before, _job_id=job_id, _queue_name=queue_name, _defer_until=defer_until
    )
    return job is not None


async def requeue_waiting_runs(pool: Pool, redis: ArqRedis, *, queue_name: str, older_than_seconds: float) -> int:
    """Queue again the runs no worker started for ``older_than_seconds``: a job that Redis lost (it
    restarted empty, or was flushed) is queued anew, one still waiting is left as it is. How many
    were missing."""
    requeued = 0
    for run in await repository.queued_runs(pool, older_than_seconds=older_than_seconds, limit=REQUEUE_BATCH):
        if await enqueue_run(
            redis,
            run_id=run.run_id,
            job_id=queued_run_job_id(queue_name, run),
            queue_name=queue_name,
            not_before=run.scheduled_for,
        ):
            requeued += 1
            logger.warning(
                "run %s (config %s) was queued %.0f s ago and its job was not in Redis: queued again",
                run.run_id,
                run.config_id,
                run.queued_seconds,
            )
    return requeued


class ArqRunQueue:
    """``SCHEDULER_BACKEND=arq`` in the web process: manual runs start here and run on a worker."""

    def __init__(self, pool: Pool, redis: ArqRedis, *, queue_name: str) -> None:
        self._pool = pool
        self._redis = redis
        self._queue_name = queue_name

    async def trigger(self, config_id: int) -> TriggeredRun:
        """Insert the ``running`` log (409 while the config runs), then queue it; with Redis down the
        log is removed again and the answer is 503 naming Redis."""
        run_id = await start_manual_run(self._pool, config_id=config_id)
        job_id = manual_job_id(self._queue_name, config_id, run_id)
        try:
            await enqueue_run(self._redis, run_id=run_id, job_id=job_id, queue_name=self._queue_name)
        except REDIS_ERRORS as exc:
            logger.warning("cannot queue run %s: Redis unavailable (%s)", run_id, type(exc).__name__)
            await repository.discard_run(self._pool, run_id=run_id)
            raise UnavailableError("Redis is unavailable, so the run could not be queued; try again shortly") from None
        return TriggeredRun(run_id=run_id, arq_job_id=job_id)
