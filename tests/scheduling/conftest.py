"""Fixtures for the scheduling tests: configs written straight into the test database, schedulers
with seconds-long interval units, and a job that stands in for the collector at the job boundary."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from itertools import count
from typing import Any, Protocol

import pytest
from arq.connections import ArqRedis, create_pool
from arq.worker import Worker
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.auth import repository as users
from backend.db.pool import Pool
from backend.runs.repository import begin_run, complete_run, delete_run, refresh_heartbeat
from backend.scheduling.runs import Clock, utc_now
from backend.scheduling.scheduler import InProcessScheduler
from backend.scheduling.worker import create_worker, redis_settings
from backend.settings import Settings
from tests.collection.fake_binance import FakeBinance, running_fake_binance
from tests.conftest import ADMIN_EMAIL, PASSWORD, PASSWORD_HASH

_symbols = count(1)


class MakeConfig(Protocol):
    def __call__(self, *, interval_minutes: int = 1, enabled: bool = True) -> Awaitable[int]: ...


@pytest.fixture
def make_config(pool: Pool) -> MakeConfig:
    """Insert a config (a new symbol each time) as the API would; its id."""

    async def make(*, interval_minutes: int = 1, enabled: bool = True) -> int:
        config_id: int = await pool.fetchval(
            "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled) "
            "VALUES ($1, 'binance', ARRAY['1m'], $2, $3) RETURNING id",
            f"C{next(_symbols)}/USDT",
            interval_minutes,
            enabled,
        )
        return config_id

    return make


@pytest.fixture
def insert_running_log(pool: Pool) -> Callable[..., Awaitable[int]]:
    """Insert a ``running`` log row (a run some process holds), heartbeat ``age_seconds`` old."""

    async def insert(*, config_id: int | None, job_type: str = "data_collection", age_seconds: float = 0) -> int:
        run_id: int = await pool.fetchval(
            "INSERT INTO job_execution_logs (job_name, job_type, config_id, status, trigger, started_at, heartbeat_at) "
            "VALUES ($1, $2, $3, 'running', 'manual', now() - make_interval(secs => $4), "
            "now() - make_interval(secs => $4)) RETURNING id",
            f"collect_data_{config_id}",
            job_type,
            config_id,
            age_seconds,
        )
        return run_id

    return insert


class StandInJob:
    """Stands in for the collector at the job boundary: begins the run as the collector does (a run
    whose config is gone, or disabled while the run was scheduled, is deleted), waits ``seconds``
    (or until ``release`` is set, when given), and completes it as a success."""

    def __init__(self, pool: Pool, *, seconds: float = 0.0, release: asyncio.Event | None = None) -> None:
        self.pool = pool
        self.seconds = seconds
        self.release = release
        self.run_ids: list[int] = []

    async def __call__(self, run_id: int) -> None:
        self.run_ids.append(run_id)
        config = await begin_run(self.pool, run_id=run_id)
        if config == "not running":
            return
        if config == "no config":
            await delete_run(self.pool, run_id=run_id)
            return
        beating = asyncio.create_task(self._beat(run_id))
        try:
            if self.release is not None:
                await self.release.wait()
            await asyncio.sleep(self.seconds)
        finally:
            beating.cancel()
        await complete_run(
            self.pool, run_id=run_id, status="success", duration_seconds=self.seconds, records_collected=0
        )

    async def _beat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(0.5)
            await refresh_heartbeat(self.pool, run_id=run_id)


@pytest.fixture
def scheduling_settings(settings: Settings) -> Settings:
    """One interval minute lasts one second; heartbeats every second; dead runs noticed after 2 s."""
    return replace(
        settings,
        scheduler_backend="inprocess",
        interval_unit_seconds=1,
        scheduler_heartbeat_seconds=1,
        run_heartbeat_seconds=1,
        stale_run_seconds=2,
        shutdown_grace_seconds=1,
        max_concurrent_jobs=8,
    )


StartScheduler = Callable[..., Awaitable[InProcessScheduler]]


@pytest.fixture
async def start_scheduler(pool: Pool, scheduling_settings: Settings) -> AsyncIterator[StartScheduler]:
    """Start in-process schedulers (each with its own job and wall clock, settings changes allowed); all
    stop at the end."""
    started: list[InProcessScheduler] = []

    async def start(
        job: Callable[[int], Awaitable[Any]], *, clock: Clock = utc_now, **changes: Any
    ) -> InProcessScheduler:
        settings = replace(scheduling_settings, **changes)
        scheduler = InProcessScheduler(pool, settings=settings, run_job=job, clock=clock)
        await scheduler.start()
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        await scheduler.stop()


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 10.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"still not true after {timeout}s: {probe.__qualname__}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    """A fake Binance on real time, for runs of the real collector through real ccxt."""
    async with running_fake_binance(["BTC/USDT", "ETH/USDT"]) as server:
        yield server


@pytest.fixture
def collecting_settings(scheduling_settings: Settings, fake: FakeBinance) -> Settings:
    """The scheduling settings with ccxt pointed at the fake through EXCHANGE_OVERRIDES."""
    return replace(
        scheduling_settings,
        exchange_overrides=fake.exchange_overrides(),
        exchange_retry_base_ms=10,
        exchange_max_retries=1,
        job_timeout_seconds=60,
    )


async def login_admin(client: AsyncTestClient[Litestar], pool: Pool) -> dict[str, str]:
    """Create an admin and log in through the API; the Authorization header."""
    await users.create_user(pool, email=ADMIN_EMAIL, password_hash=PASSWORD_HASH, role="admin")
    response = await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def arq_settings(scheduling_settings: Settings, redis_url: str) -> Settings:
    """SCHEDULER_BACKEND=arq on the test Redis, on a queue of this test's own, ticking every second."""
    return replace(
        scheduling_settings,
        scheduler_backend="arq",
        redis_url=redis_url,
        arq_queue_name=f"test-scheduling:{uuid.uuid4().hex[:10]}",
        scheduler_tick_seconds=1,
    )


StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def arq_redis(arq_settings: Settings) -> AsyncIterator[ArqRedis]:
    """arq's connection to the test Redis; every key of the test's queue (and of queues named after
    it) leaves Redis at the end."""
    redis = await create_pool(redis_settings(arq_settings.redis_url))
    yield redis
    keys = [key async for key in redis.scan_iter(match=f"*{arq_settings.arq_queue_name}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def start_worker(arq_settings: Settings, arq_redis: ArqRedis) -> AsyncIterator[StartWorker]:
    """Run real arq Workers in this process (``job``: the stand-in at the job boundary; None: the real
    collector; ``arq_options``: arq's own); all stop at the end, before the test queue's keys leave Redis."""
    workers: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(
        job: Callable[[int], Awaitable[Any]] | None, *, arq_options: dict[str, Any] | None = None, **changes: Any
    ) -> Worker:
        options = {"handle_signals": False, "poll_delay": 0.05, **(arq_options or {})}
        worker = create_worker(replace(arq_settings, **changes), run_job=job, **options)
        workers.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    yield start
    for worker, task in workers:
        await worker.close()  # also runs on_shutdown of a worker whose main task ended (SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await task
