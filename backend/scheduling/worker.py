"""The arq backend (``SCHEDULER_BACKEND=arq``): the Procfile's ``worker: arq backend.scheduling.worker.WorkerSettings``.

Every worker beats in ``scheduler_heartbeats``; a cron tick every ``SCHEDULER_TICK_SECONDS``
claims due slots (no more than the live workers can take) and queues one ``collect`` job per
started run, with a deterministic job id. Several workers can run: the claims share the work
through ``FOR UPDATE SKIP LOCKED``. The web process queues manual runs (``ArqRunQueue``) and runs
no collection itself. On SIGTERM arq stops taking jobs, waits ``SHUTDOWN_GRACE_SECONDS``, then
cancels what still runs (the collector logs it ``failed``/``Cancelled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from arq import cron, func
from arq.connections import ArqRedis, RedisSettings

from backend.collection.collector import Collector
from backend.collection.exchanges import open_exchange_clients
from backend.db.pool import Pool, create_pool
from backend.scheduling import repository
from backend.scheduling.queue import (
    CLEANUP_JOB,
    COLLECT_JOB,
    REDIS_ERRORS,
    cleanup_job_id,
    enqueue_run,
    scheduled_job_id,
)
from backend.scheduling.retention import retain_logs
from backend.scheduling.runs import RunJob, claim_and_start_runs, housekeeping, new_scheduler_id, run_to_end
from backend.scheduling.scheduler import DATABASE_ERRORS
from backend.settings import Settings, load_settings

logger = logging.getLogger(__name__)

MAX_TRIES = 3  # a job whose worker died is retried; a run that already ended is then a no-op
HEALTH_CHECK_SECONDS = 30  # `arq --check backend.scheduling.worker.WorkerSettings` reads it
# arq's timeout is only a backstop: the collector ends a run at JOB_TIMEOUT_SECONDS and logs a Timeout
JOB_TIMEOUT_MARGIN_SECONDS = 60


async def collect(ctx: dict[str, Any], run_id: int) -> None:
    """Carry the started run ``run_id`` to its end (nothing if it ended before this worker took it)."""
    await run_to_end(ctx["pool"], ctx["run_job"], run_id)


async def cleanup_logs(ctx: dict[str, Any]) -> int:
    """Today's log retention; its execution log's id."""
    settings: Settings = ctx["settings"]
    return await retain_logs(
        ctx["pool"],
        retention_days=settings.log_retention_days,
        candle_retention_days=settings.candle_retention_days,
    )


async def schedule_tick(ctx: dict[str, Any]) -> int:
    """Claim the due slots the live workers have room for, start their runs and queue them; how many."""
    settings: Settings = ctx["settings"]
    pool: Pool = ctx["pool"]
    free = await repository.arq_free_capacity(pool, jobs_per_worker=settings.max_concurrent_jobs)
    started = await claim_and_start_runs(pool, limit=free, interval_unit_seconds=settings.interval_unit_seconds)
    redis: ArqRedis = ctx["redis"]
    for index, run in enumerate(started):
        try:
            await enqueue_run(
                redis,
                run_id=run.run_id,
                job_id=scheduled_job_id(settings.arq_queue_name, run),
                queue_name=settings.arq_queue_name,
            )
        except REDIS_ERRORS as exc:
            # the slots were claimed: record them as failed rather than lose them silently
            for lost in started[index:]:
                await repository.fail_run_if_running(
                    pool,
                    run_id=lost.run_id,
                    error_type="QueueUnavailable",
                    error_message=f"Redis was unavailable, so the run could not be queued ({type(exc).__name__})",
                )
            raise
    return len(started)


async def startup(ctx: dict[str, Any]) -> None:
    """Open the pool and the exchange clients, beat once, and keep beating."""
    settings: Settings = ctx["settings"]
    assert settings.database_url is not None, "DATABASE_URL must be set for the worker"
    stack = AsyncExitStack()
    pool = await create_pool(
        settings.database_url, min_size=settings.database_pool_min_size, max_size=settings.database_pool_max_size
    )
    stack.push_async_callback(pool.close)
    if ctx.get("run_job") is None:
        exchanges = await stack.enter_async_context(open_exchange_clients(settings.exchange_overrides))
        ctx["run_job"] = Collector(pool=pool, exchanges=exchanges, settings=settings).execute_run
    ctx.update(pool=pool, exit_stack=stack, scheduler_id=new_scheduler_id())
    await repository.beat(
        pool, scheduler_id=ctx["scheduler_id"], backend="arq", lease_seconds=settings.scheduler_heartbeat_seconds * 3
    )
    ctx["keep_alive"] = asyncio.create_task(_keep_alive(ctx), name="scheduler heartbeat")
    logger.info("arq worker %s started", ctx["scheduler_id"])


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop beating, leave the heartbeat table, close the exchange clients and the pool."""
    keep_alive: asyncio.Task[None] | None = ctx.get("keep_alive")
    if keep_alive is not None:
        keep_alive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keep_alive
    if "pool" in ctx:
        with contextlib.suppress(*DATABASE_ERRORS):
            await repository.remove_heartbeat(ctx["pool"], scheduler_id=ctx["scheduler_id"])
        await ctx["exit_stack"].aclose()
    logger.info("arq worker %s stopped", ctx.get("scheduler_id"))


async def _keep_alive(ctx: dict[str, Any]) -> None:
    """Heartbeat, dead-run recovery and the daily retention job, every SCHEDULER_HEARTBEAT_SECONDS."""
    settings: Settings = ctx["settings"]
    while True:
        try:
            if await housekeeping(ctx["pool"], settings=settings, scheduler_id=ctx["scheduler_id"], backend="arq"):
                redis: ArqRedis = ctx["redis"]
                await redis.enqueue_job(
                    CLEANUP_JOB,
                    _job_id=cleanup_job_id(settings.arq_queue_name, datetime.now(UTC)),
                    _queue_name=settings.arq_queue_name,
                )
        except (*DATABASE_ERRORS, *REDIS_ERRORS) as exc:
            logger.warning("worker heartbeat failed (%s); retrying", type(exc).__name__)
        await asyncio.sleep(settings.scheduler_heartbeat_seconds)


def redis_settings(url: str | None) -> RedisSettings:
    """arq's connection settings for REDIS_URL; ``rediss://`` accepts Heroku Redis's self-signed certificate."""
    if url is None:
        return RedisSettings()
    settings = RedisSettings.from_dsn(url)
    if urlsplit(url).scheme == "rediss":
        settings = dataclasses.replace(settings, ssl_cert_reqs="none")
    return settings


def worker_options(settings: Settings, *, run_job: RunJob | None = None) -> dict[str, Any]:
    """The arq ``Worker`` options for ``settings``. ``run_job`` replaces the collector at the job
    boundary (the benchmark's no-network stand-in); left out, the worker runs the real collector."""
    return {
        "functions": [func(collect, name=COLLECT_JOB, max_tries=MAX_TRIES), func(cleanup_logs, name=CLEANUP_JOB)],
        "cron_jobs": [
            cron(
                schedule_tick,
                name="schedule_tick",
                second=set(range(0, 60, settings.scheduler_tick_seconds)),
                run_at_startup=True,
                unique=True,
                max_tries=1,
            )
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": redis_settings(settings.redis_url),
        "queue_name": settings.arq_queue_name,
        "max_jobs": settings.max_concurrent_jobs + 1,  # room for the tick next to a full set of runs
        "job_timeout": settings.job_timeout_seconds + JOB_TIMEOUT_MARGIN_SECONDS,
        "max_tries": MAX_TRIES,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "job_completion_wait": settings.shutdown_grace_seconds,
        "ctx": {"settings": settings, "run_job": run_job},
    }


WorkerSettings = type("WorkerSettings", (), worker_options(load_settings()))
"""What ``arq backend.scheduling.worker.WorkerSettings`` runs: the options from the environment."""
