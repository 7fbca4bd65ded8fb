"""Fixtures for the scheduling tests: configs written straight into the test database, schedulers
with seconds-long interval units, and a job that stands in for the collector at the job boundary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from itertools import count
from typing import Any, Protocol

import pytest

from backend.db.pool import Pool
from backend.runs.repository import complete_run, mark_run_started, refresh_heartbeat
from backend.scheduling.scheduler import InProcessScheduler
from backend.settings import Settings

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
    """Stands in for the collector at the job boundary: marks the run started, waits ``seconds``
    (or until ``release`` is set, when given), and completes it as a success."""

    def __init__(self, pool: Pool, *, seconds: float = 0.0, release: asyncio.Event | None = None) -> None:
        self.pool = pool
        self.seconds = seconds
        self.release = release
        self.run_ids: list[int] = []

    async def __call__(self, run_id: int) -> None:
        self.run_ids.append(run_id)
        await mark_run_started(self.pool, run_id=run_id)
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
    """Start in-process schedulers (each with its own job, settings changes allowed); all stop at the end."""
    started: list[InProcessScheduler] = []

    async def start(job: Callable[[int], Awaitable[Any]], **changes: Any) -> InProcessScheduler:
        scheduler = InProcessScheduler(pool, settings=replace(scheduling_settings, **changes), run_job=job)
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
