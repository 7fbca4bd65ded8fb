"""The arq backend (``SCHEDULER_BACKEND=arq``): the Procfile's ``worker: python -m backend worker``.

Every worker beats in ``scheduler_heartbeats`` (PostgreSQL); a cron tick every ``SCHEDULER_TICK_SECONDS``
claims the slots due within two ticks and queues one ``collect`` job per started run, with a
deterministic job id, deferred to its slot: runs start at their slot, however many are due. Once
the workers fall behind (a queued run waits two ticks past its slot), ticks claim no more than the live
workers have room for, and the other due slots collapse in the database. Several workers can run:
the claims share the work through ``FOR UPDATE SKIP LOCKED``. The web process queues manual runs
(``ArqRunQueue``) and runs no collection itself. On SIGTERM arq stops taking jobs, waits
``SHUTDOWN_GRACE_SECONDS``, then cancels what still runs (the collector logs it ``failed``/``Cancelled``).

Redis may go away for minutes: :class:`ResilientWorker` keeps the process up (arq's own loop ends
on the first Redis error), says so in the log, retries with backoff, and keeps beating in
PostgreSQL meanwhile. Due slots wait in the database and are claimed when Redis is back, as one
run each with ``missed_slots``; runs whose jobs Redis lost are queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from arq import cron, func
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker, async_check_health
from redis.commands.core import AsyncScript

from backend.alerts.tasks import AlertTasks
from backend.backoff import Backoff
from backend.collection.collector import Collector
from backend.collection.exchanges import open_exchange_clients
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.db.pool import Pool, close_pool
from backend.db.pool import create_pool as create_database_pool
from backend.scheduling import repository
from backend.scheduling.queue import (
    COLLECT_JOB,
    REDIS_ERRORS,
    CollectJob,
    enqueue_runs,
    requeue_waiting_runs,
    scheduled_job_id,
)
from backend.scheduling.retention import due_system_jobs
from backend.scheduling.runs import (
    Clock,
    RunJob,
    StartedRun,
    claim_and_start_runs,
    housekeeping,
    new_scheduler_id,
    run_to_end,
    utc_now,
)
from backend.scheduling.scheduler import DATABASE_ERRORS
from backend.settings import Settings
from backend.waiting import cancel_and_wait, wait_for_event

logger = logging.getLogger(__name__)

MAX_TRIES = 3  # a job whose worker died is retried; a run that already ended is then a no-op
# A run's outcome is its log in the database: arq keeps no result of it (it would keep one for an
# hour by default, 440 bytes each: 26 MB of Redis at 1,000 one-minute configs, more than the
# smallest hosted plans hold). A run's job is not queued twice without it: see backend.scheduling.queue.
RUN_RESULT_KEPT_SECONDS = 0
HEALTH_CHECK_SECONDS = 30  # `python -m backend worker --check` reads the key arq refreshes this often
# arq's timeout is only a backstop: the collector ends a run at JOB_TIMEOUT_SECONDS and logs a Timeout
JOB_TIMEOUT_MARGIN_SECONDS = 60
# while Redis is away: retry after 0.5 s, then less often, at most every 5 s
REDIS_RETRY_FIRST_SECONDS = 0.5
REDIS_RETRY_MAX_SECONDS = 5.0
REDIS_AWAY_REMINDER_SECONDS = 60  # how often the log repeats that Redis is still away
TICK_JOB = "schedule_tick"  # the tick's job is named after the queue: see tick_job_name
# A tick claims the slots due within this many ticks: until the next tick, and as far again, for the
# next tick may itself start late on a busy machine (its runs wait in Redis for their slots)
CLAIM_AHEAD_TICKS = 2
CLAIM_BATCH = 500  # slots claimed per transaction; a tick claims batches until none is left
ENQUEUE_BATCH = 500  # jobs queued per round trip to Redis
# how often a worker looks for jobs whose time came (arq's default is 0.5 s): bounds lateness
POLL_DELAY_SECONDS = 0.1
# the workers are behind once a queued run waits this many ticks past its slot (a busy machine
# delays a run by a tick now and then without the workers falling behind)
BEHIND_AFTER_TICKS = 2


# Marks in progress (as arq does, for as long) each job of ARGV[3..] that no worker runs and whose
# score in the queue KEYS[1] is due by ARGV[1] (the other KEYS: the jobs' in-progress keys); returns
# the started jobs' ids and scores, flat. A script runs alone in Redis: a check and its mark are one.
START_JOBS_SCRIPT = """
local started = {}
for i = 2, #KEYS do
    local job_id = ARGV[i + 1]
    if redis.call('EXISTS', KEYS[i]) == 0 then
        local score = redis.call('ZSCORE', KEYS[1], job_id)
        if score and tonumber(score) <= tonumber(ARGV[1]) then
            redis.call('PSETEX', KEYS[i], ARGV[2], '1')
            table.insert(started, job_id)
            table.insert(started, score)
        end
    end
end
return started
"""


class RoutineLinesToDebug(logging.Filter):
    """arq logs each cron tick as it starts and ends (two INFO lines every SCHEDULER_TICK_SECONDS,
    60 a minute on an idle worker) and a health line whenever its job counters move: routine, not
    changes of state. Those lines become DEBUG (shown with LOG_LEVEL=DEBUG); the lines of ``collect``
    jobs, each a run starting or ending, stay INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        message = record.getMessage()
        if TICK_JOB not in message and not message.startswith("recording health"):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


ROUTINE_LINES_TO_DEBUG = RoutineLinesToDebug()


async def collect(ctx: dict[str, Any], run_id: int, not_before: datetime | None = None) -> None:
    """Carry the queued run ``run_id`` to its end (nothing if it ended before this worker took it),
    never before its slot ``not_before`` by this worker's clock (the tick claimed it by the database's)."""
    await run_to_end(ctx["pool"], ctx["run_job"], run_id, not_before=not_before, clock=ctx["clock"])


async def schedule_tick(ctx: dict[str, Any]) -> int:
    """Claim the slots due within two ticks (only what the workers have room for once they are
    behind), start their runs and queue them, each deferred to its slot; how many. While the
    database is unreachable, none (the slots wait in it; the outage is logged once)."""
    settings: Settings = ctx["settings"]
    pool: Pool = ctx["pool"]
    try:
        started = await _claim_for_next_tick(pool, settings)
    except Exception as exc:
        if not is_outage(exc):
            raise
        DATABASE_OUTAGE.unreachable(exc)
        return 0
    redis: ArqRedis = ctx["redis"]
    jobs = [
        CollectJob(run.run_id, scheduled_job_id(settings.arq_queue_name, run), run.scheduled_for) for run in started
    ]
    for first in range(0, len(jobs), ENQUEUE_BATCH):
        try:
            await enqueue_runs(redis, jobs[first : first + ENQUEUE_BATCH], queue_name=settings.arq_queue_name)
        except REDIS_ERRORS as exc:
            # the runs stay queued in the database; they are queued again once Redis is back
            logger.warning(
                "Redis is away (%s): %d claimed runs wait in the database until it is back",
                type(exc).__name__,
                len(jobs) - first,
            )
            break
    return len(started)


async def _claim_for_next_tick(pool: Pool, settings: Settings) -> list[StartedRun]:
    load = await repository.arq_load(pool, late_after_seconds=BEHIND_AFTER_TICKS * settings.scheduler_tick_seconds)
    limit = load.claim_limit(jobs_per_worker=settings.max_concurrent_jobs, keeping_up=CLAIM_BATCH)
    started: list[StartedRun] = []
    while limit > 0:
        batch = await claim_and_start_runs(
            pool,
            limit=min(limit, CLAIM_BATCH),
            interval_unit_seconds=settings.interval_unit_seconds,
            ahead_seconds=CLAIM_AHEAD_TICKS * settings.scheduler_tick_seconds,
        )
        started += batch
        if len(batch) < CLAIM_BATCH or load.behind:
            break
    return started


async def startup(ctx: dict[str, Any]) -> None:
    """Open the pool and the exchange clients, start the alert loops, beat once, and keep beating
    (Redis is not needed yet)."""
    settings: Settings = ctx["settings"]
    assert settings.database_url is not None, "DATABASE_URL must be set for the worker"
    stack = AsyncExitStack()
    pool = await create_database_pool(
        settings.database_url, min_size=settings.database_pool_min_size, max_size=settings.database_pool_max_size
    )
    stack.push_async_callback(close_pool, pool)
    if ctx.get("run_job") is None:
        clients = open_exchange_clients(
            settings.exchange_overrides, pool, settle_seconds=settings.exchange_settle_seconds
        )
        exchanges = await stack.enter_async_context(clients)
        ctx["run_job"] = Collector(pool=pool, exchanges=exchanges, settings=settings).execute_run
        ctx["exchange_activity"] = exchanges.activity
    alerts = AlertTasks(pool, settings=settings)  # every worker takes its turn at the alerts, as web processes do
    alerts.start()
    stack.push_async_callback(alerts.stop)
    ctx.update(pool=pool, exit_stack=stack, scheduler_id=new_scheduler_id(), background=set())
    await repository.beat(
        pool, scheduler_id=ctx["scheduler_id"], backend="arq", lease_seconds=settings.scheduler_heartbeat_seconds * 3
    )
    ctx["keep_alive"] = asyncio.create_task(_keep_alive(ctx), name="scheduler heartbeat")
    logger.info("arq worker %s started", ctx["scheduler_id"])


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop beating, leave the heartbeat table, close the exchange clients and the pool."""
    tasks: list[asyncio.Task[Any]] = [ctx.pop("keep_alive")] if "keep_alive" in ctx else []
    tasks += ctx.get("background", ())
    await cancel_and_wait(tasks)
    if "exit_stack" in ctx:
        with contextlib.suppress(*DATABASE_ERRORS):
            await repository.remove_heartbeat(ctx["pool"], scheduler_id=ctx["scheduler_id"])
        await ctx.pop("exit_stack").aclose()
    logger.info("arq worker %s stopped", ctx.get("scheduler_id"))


async def _keep_alive(ctx: dict[str, Any]) -> None:
    """Every SCHEDULER_HEARTBEAT_SECONDS, whatever happens: heartbeat, dead-run recovery and the daily
    retention (PostgreSQL), then queue again the runs whose jobs Redis lost (when Redis is there)."""
    settings: Settings = ctx["settings"]
    redis_back: asyncio.Event = ctx["redis_back"]
    backoff = Backoff(first_seconds=REDIS_RETRY_FIRST_SECONDS, max_seconds=settings.scheduler_heartbeat_seconds)
    while True:
        delay: float = settings.scheduler_heartbeat_seconds
        try:
            due = await housekeeping(
                ctx["pool"],
                settings=settings,
                scheduler_id=ctx["scheduler_id"],
                backend="arq",
                exchange_activity=ctx.get("exchange_activity"),
            )
            for job in due_system_jobs(ctx["pool"], due, settings=settings):
                _in_background(ctx, job)
            backoff.reset()
            DATABASE_OUTAGE.reachable()
        except Exception as exc:
            delay = backoff.next_delay()
            if is_outage(exc):
                DATABASE_OUTAGE.unreachable(exc)
            else:
                logger.exception("worker heartbeat failed; again in %.1f s", delay)
        redis: ArqRedis | None = ctx.get("redis")
        if redis is not None:
            # right after Redis came back, every queued run is checked; otherwise those waiting long
            older_than = 0 if redis_back.is_set() else settings.stale_run_seconds
            redis_back.clear()
            try:
                await requeue_waiting_runs(
                    ctx["pool"], redis, queue_name=settings.arq_queue_name, older_than_seconds=older_than
                )
            except REDIS_ERRORS + DATABASE_ERRORS as exc:
                logger.debug("queued runs not checked now (%s); next beat", type(exc).__name__)
            except Exception:
                logger.exception("checking queued runs failed")
        await wait_for_event(redis_back, delay)


def _in_background(ctx: dict[str, Any], job: Any) -> None:
    background: set[asyncio.Task[Any]] = ctx["background"]
    task = asyncio.create_task(job)
    background.add(task)
    task.add_done_callback(background.discard)


class ResilientWorker(Worker):
    """arq's ``Worker``, made to outlive Redis: the database side starts first, Redis is connected
    with endless retries, and an error of the polling loop is logged and retried with backoff
    instead of ending the process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_away_since: float | None = None
        self._redis_away_logged = 0.0
        self._backoff = Backoff(first_seconds=REDIS_RETRY_FIRST_SECONDS, max_seconds=REDIS_RETRY_MAX_SECONDS)
        self._closed = False
        self.ctx["redis_back"] = asyncio.Event()  # set when Redis comes back after an outage
        self._place_freed = asyncio.Event()  # set when a job ends
        self._start_script: AsyncScript | None = None

    async def main(self) -> None:
        if self.on_startup:
            await self.on_startup(self.ctx)
        if self._pool is None:
            self._pool = await self._connect_redis()
        self.ctx["redis"] = self._pool
        logger.info("worker polling queue %s for %s", self.queue_name, ", ".join(self.functions))
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            self._place_freed.clear()
            try:
                await self._poll_iteration()
            except Exception as exc:
                await self._wait_after(exc)
                continue
            self._redis_is_back()
            await self._until_next_poll(self.poll_delay_s - (loop.time() - began))

    async def _until_next_poll(self, delay: float) -> None:
        """Sleep ``delay`` (the rest of the poll period), or less: a worker that had no free place
        looks again as soon as a run ends, so that a place never stays empty for the rest of a poll
        period while due jobs wait."""
        if delay <= 0:
            return
        if self.job_counter < self.max_jobs:
            await asyncio.sleep(delay)
            return
        await wait_for_event(self._place_freed, delay)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._place_freed.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's, for as many jobs at once as there are free places: one round trip to Redis starts
        them all (arq takes four a job), so that runs due together begin together.

        A job stays in the queue until it ends, so the due jobs read first are mostly those already
        running, on this worker or another: they are left out with one round trip for all of them
        (arq checks each with three), and when a whole read held nothing to start, the next due jobs
        are read, so that a job queued behind more running jobs than one read holds still starts."""
        read = 0
        while True:
            waiting = await self._not_in_progress(job_ids)
            while waiting and self.allow_pick_jobs and self.job_counter < self.max_jobs:
                room = self.max_jobs - self.job_counter
                await self._start_together(waiting[:room])
                waiting = waiting[room:]
            read += len(job_ids)
            if len(job_ids) < self.queue_read_limit or self.job_counter >= self.max_jobs:
                return
            job_ids = await self.pool.zrangebyscore(
                self.queue_name, min=float("-inf"), max=timestamp_ms(), start=read, num=self.queue_read_limit
            )

    async def _start_together(self, job_ids: list[bytes]) -> None:
        """Start the jobs of ``job_ids`` that are still due and that no worker runs, as arq's own start
        decides it for one job (and as atomically: another worker starting one of them at the same
        moment starts it or leaves it, never both), then run them, a place each."""
        if self._start_script is None:
            self._start_script = self.pool.register_script(START_JOBS_SCRIPT)
        ids = [job_id.decode() for job_id in job_ids]
        started = await self._start_script(
            keys=[self.queue_name, *(in_progress_key_prefix + job_id for job_id in ids)],
            args=[timestamp_ms(), int(self.in_progress_timeout_s * 1000), *ids],
            client=self.pool,
        )
        for job_id, score in zip(started[::2], started[1::2], strict=True):
            await self.sem.acquire()  # never waits: there was a place for each
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id.decode(), int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id.decode()] = task

    async def _not_in_progress(self, job_ids: list[bytes]) -> list[bytes]:
        """The jobs no worker runs: those this worker runs are known here, the others are asked of Redis."""
        elsewhere = [job_id for job_id in job_ids if not self._running_here(job_id)]
        if not elsewhere:
            return elsewhere
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in elsewhere:
                pipe.exists(in_progress_key_prefix + job_id.decode())
            running = await pipe.execute()
        return [job_id for job_id, in_progress in zip(elsewhere, running, strict=True) if not in_progress]

    def _running_here(self, job_id: bytes) -> bool:
        task = self.tasks.get(job_id.decode())
        return task is not None and not task.done()

    async def close(self) -> None:
        """arq's, without giving up when Redis is away, and always closing the database side."""
        if self._closed:
            return
        self._closed = True
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self._pool is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        if self._pool is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._pool.aclose(close_connection_pool=True)
            self._pool = None

    async def _connect_redis(self) -> ArqRedis:
        assert self.redis_settings is not None
        settings = dataclasses.replace(self.redis_settings, conn_retries=0)
        while True:
            try:
                redis = await create_pool(settings, default_queue_name=self.queue_name)
            except (TimeoutError, *REDIS_ERRORS) as exc:
                await self._wait_after(exc)
                continue
            self._redis_is_back()
            return redis

    async def _wait_after(self, exc: Exception) -> None:
        """Log the failure (Redis away: once, then a reminder a minute), then back off."""
        now = time.monotonic()
        if not isinstance(exc, REDIS_ERRORS):
            logger.exception("worker loop failed; retrying")
        elif self._redis_away_since is None:
            self._redis_away_since = self._redis_away_logged = now
            logger.warning(
                "Redis is away (%s: %s); retrying with backoff. Runs wait in the database; "
                "this worker keeps its heartbeat in PostgreSQL",
                type(exc).__name__,
                exc,
            )
        elif now - self._redis_away_logged >= REDIS_AWAY_REMINDER_SECONDS:
            self._redis_away_logged = now
            logger.warning("Redis still away after %.0f s (%s)", now - self._redis_away_since, type(exc).__name__)
        await asyncio.sleep(self._backoff.next_delay())

    def _redis_is_back(self) -> None:
        self._backoff.reset()
        if self._redis_away_since is not None:
            logger.warning("Redis is back after %.0f s", time.monotonic() - self._redis_away_since)
            self._redis_away_since = None
            self.ctx["redis_back"].set()


def tick_job_name(queue_name: str) -> str:
    """The tick's job name, which arq also puts in each tick's job id: with the queue's name in it,
    deployments sharing one Redis each get every tick (under a bare ``schedule_tick``, a second's
    tick queued by one deployment would be the other's too, which would then skip it)."""
    return f"{queue_name}:{TICK_JOB}"


def redis_settings(url: str | None) -> RedisSettings:
    """arq's connection settings for REDIS_URL; ``rediss://`` accepts Heroku Redis's self-signed certificate."""
    if url is None:
        return RedisSettings()
    settings = RedisSettings.from_dsn(url)
    if urlsplit(url).scheme == "rediss":
        settings = dataclasses.replace(settings, ssl_cert_reqs="none")
    return settings


def create_worker(
    settings: Settings, *, run_job: RunJob | None = None, clock: Clock = utc_now, **options: Any
) -> ResilientWorker:
    """The worker for ``settings``. ``run_job`` replaces the collector at the job boundary (tests and the
    benchmark's no-network stand-in); left out, the worker runs the real collector. ``clock``: the wall
    clock a run waits on until its slot. ``options`` go to arq."""
    logging.getLogger("arq.worker").addFilter(ROUTINE_LINES_TO_DEBUG)
    return ResilientWorker(
        functions=[func(collect, name=COLLECT_JOB, max_tries=MAX_TRIES, keep_result=RUN_RESULT_KEPT_SECONDS)],
        cron_jobs=[
            cron(
                schedule_tick,
                name=tick_job_name(settings.arq_queue_name),
                second=set(range(0, 60, settings.scheduler_tick_seconds)),
                run_at_startup=True,
                unique=True,
                max_tries=1,
            )
        ],
        on_startup=startup,
        on_shutdown=shutdown,
        redis_settings=redis_settings(settings.redis_url),
        queue_name=settings.arq_queue_name,
        max_jobs=settings.max_concurrent_jobs + 1,  # room for the tick next to a full set of runs
        job_timeout=settings.job_timeout_seconds + JOB_TIMEOUT_MARGIN_SECONDS,
        max_tries=MAX_TRIES,
        health_check_interval=HEALTH_CHECK_SECONDS,
        job_completion_wait=settings.shutdown_grace_seconds,
        ctx={"settings": settings, "run_job": run_job, "clock": clock},
        **{"poll_delay": POLL_DELAY_SECONDS, **options},
    )


def run_worker(settings: Settings) -> None:
    """``python -m backend worker``: run until SIGTERM/SIGINT."""
    create_worker(settings).run()


def check_worker_health(settings: Settings) -> int:
    """``python -m backend worker --check``: 0 when a worker of this queue recorded its health lately."""
    return asyncio.run(async_check_health(redis_settings(settings.redis_url), queue_name=settings.arq_queue_name))
