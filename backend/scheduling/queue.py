"""The arq queue as both sides see it: job names and ids, and enqueueing a started run.

Job ids are deterministic, so a run is never queued twice: a scheduled run by its config and slot
(a second claim of the slot, were it possible, would find the job there), a manual run by its id.
They start with the queue's name, so that deployments sharing one Redis never meet. A job leaves
Redis when its run ends (no result is kept): a run is queued again only while its log says it
waits for a worker (``requeue_waiting_runs``), and an ended run never does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
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


@dataclass(frozen=True, slots=True)
class CollectJob:
    """The ``collect`` job of a queued run: its id, and the moment it may start (its slot; None: at once)."""

    run_id: int
    job_id: str
    not_before: datetime | None = None


# Queues each job as arq's enqueue_job does, all in one script (which runs alone in Redis): a job
# whose key or kept result is there already is left as it is. KEYS: the queue, then each job's key
# and result key; ARGV: four per job (its id, score, milliseconds to keep its key, its data).
# Returns, per job, 1 when it was queued.
ENQUEUE_SCRIPT = """
local queued = {}
for k = 0, (#KEYS - 1) / 2 - 1 do
    local job_key, result_key = KEYS[2 + 2 * k], KEYS[3 + 2 * k]
    if redis.call('EXISTS', job_key, result_key) == 0 then
        redis.call('PSETEX', job_key, ARGV[3 + 4 * k], ARGV[4 + 4 * k])
        redis.call('ZADD', KEYS[1], ARGV[2 + 4 * k], ARGV[1 + 4 * k])
        queued[k + 1] = 1
    else
        queued[k + 1] = 0
    end
end
return queued
"""


async def enqueue_runs(redis: ArqRedis, jobs: Sequence[CollectJob], *, queue_name: str) -> list[bool]:
    """Queue the ``collect`` jobs of queued runs in one round trip, each to start at its
    ``not_before`` (which the job also carries, so that the worker need not read it); per job,
    False when a job with its id was there already."""
    if not jobs:
        return []
    enqueued_at = timestamp_ms()
    keys: list[str] = [queue_name]
    arguments: list[str | int | bytes] = []
    for job in jobs:
        # arq keeps whole milliseconds: a millisecond later, never before the slot
        score = enqueued_at if job.not_before is None else to_unix_ms(job.not_before + ARQ_TIME_RESOLUTION)
        data = serialize_job(
            COLLECT_JOB, (job.run_id, job.not_before), {}, None, enqueued_at, serializer=redis.job_serializer
        )
        keys += [job_key_prefix + job.job_id, result_key_prefix + job.job_id]
        arguments += [job.job_id, score, score - enqueued_at + redis.expires_extra_ms, data]
    queued = await redis.register_script(ENQUEUE_SCRIPT)(keys=keys, args=arguments)
    return [bool(flag) for flag in queued]


async def requeue_waiting_runs(pool: Pool, redis: ArqRedis, *, queue_name: str, older_than_seconds: float) -> int:
    """Queue again the runs no worker started for ``older_than_seconds``: a job that Redis lost (it
    restarted empty, or was flushed) is queued anew, one still waiting is left as it is. How many
    were missing."""
    runs = await repository.queued_runs(pool, older_than_seconds=older_than_seconds, limit=REQUEUE_BATCH)
    jobs = [CollectJob(run.run_id, queued_run_job_id(queue_name, run), run.scheduled_for) for run in runs]
    requeued = 0
    for run, queued in zip(runs, await enqueue_runs(redis, jobs, queue_name=queue_name), strict=True):
        if queued:
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
            await enqueue_runs(self._redis, [CollectJob(run_id, job_id)], queue_name=self._queue_name)
        except REDIS_ERRORS as exc:
            logger.warning("cannot queue run %s: Redis unavailable (%s)", run_id, type(exc).__name__)
            await repository.discard_run(self._pool, run_id=run_id)
            raise UnavailableError("Redis is unavailable, so the run could not be queued; try again shortly") from None
        return TriggeredRun(run_id=run_id, arq_job_id=job_id)
