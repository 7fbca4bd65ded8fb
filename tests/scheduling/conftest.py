"""Fixtures for the scheduling tests: configs and runs written straight into the test database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count
from typing import Protocol

import pytest

from backend.db.pool import Pool

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
