"""Execution logs and configs written straight into the database, as the collector and admins would."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar

from backend.db.pool import Pool
from backend.monitoring.etag import DataVersions, combine_tokens, read_data_version_tokens

ADMIN_PATH = "/api/v1/admin/data-collection"
InsertLog = Callable[..., Awaitable[int]]
InsertConfig = Callable[..., Awaitable[int]]
NOTIFY_WAIT_SECONDS = 5.0  # a safety net for a NOTIFY to reach the app, not a measure

LOG_DEFAULTS: dict[str, Any] = {
    "job_type": "data_collection",
    "exchange": "binance",
    "status": "success",
    "trigger": "schedule",
    "records_collected": 10,
    "duration_seconds": 2.0,
}


@pytest.fixture
def insert_config(pool: Pool) -> InsertConfig:
    async def insert(symbol: str = "BTC/USDT", exchange: str = "binance", enabled: bool = True) -> int:
        config_id: int = await pool.fetchval(
            "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled) "
            "VALUES ($1, $2, '{1m}', 10, $3) RETURNING id",
            symbol,
            exchange,
            enabled,
        )
        return config_id

    return insert


@pytest.fixture
def insert_log(pool: Pool) -> InsertLog:
    """Insert one execution log; ``started_at`` defaults to a minute ago, finished runs get ``finished_at``."""

    async def insert(**fields: Any) -> int:
        row = {**LOG_DEFAULTS, **fields}
        row.setdefault("started_at", datetime.now(UTC) - timedelta(minutes=1))
        row.setdefault("symbol", "BTC/USDT")
        config_id = row.get("config_id")
        row.setdefault("job_name", f"collect_data_{config_id}" if config_id else "collect_data_0")
        if row["status"] == "running":
            row["duration_seconds"] = None
            row["records_collected"] = None
            row.setdefault("finished_at", None)
        else:
            row.setdefault("finished_at", row["started_at"] + timedelta(seconds=row["duration_seconds"] or 0))
        names = list(row)
        placeholders = ", ".join(f"${index}" for index in range(1, len(names) + 1))
        log_id: int = await pool.fetchval(
            f"INSERT INTO job_execution_logs ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
            *row.values(),
        )
        return log_id

    return insert


async def until_the_app_has_heard(app: Litestar, pool: Pool) -> None:
    """Wait for the last change's NOTIFY to reach the app, so the next tag is taken after it.

    An answer computed before the notification arrives carries the older tag (by design: the next
    poll replaces it), so a test that compares two tags must take the first one after it.
    """
    stored = combine_tokens(await read_data_version_tokens(pool))
    versions: DataVersions = app.state.data_versions
    deadline = asyncio.get_running_loop().time() + NOTIFY_WAIT_SECONDS
    while versions.current() != stored and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


async def away_from_a_minute_edge() -> None:
    """Tags change with the minute: a test comparing two starts early enough in one to finish in it."""
    if datetime.now(UTC).second >= 55:
        await asyncio.sleep(60.1 - datetime.now(UTC).second - datetime.now(UTC).microsecond / 1e6)
