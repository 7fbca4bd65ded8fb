"""Execution logs and configs written straight into the database, as the collector and admins would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.db.pool import Pool

ADMIN_PATH = "/api/v1/admin/data-collection"
InsertLog = Callable[..., Awaitable[int]]
InsertConfig = Callable[..., Awaitable[int]]

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
