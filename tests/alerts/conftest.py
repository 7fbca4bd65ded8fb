"""Fixtures for the alert tests: a webhook receiver, an app whose alerts post to it, runs written as
the collector would have, and evaluating now (here, or by whichever process took the turn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from itertools import count
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.alerts.evaluation import evaluate_once
from backend.alerts.repository import EVALUATION_JOB
from backend.app import create_app
from backend.db.pool import Connection, Pool
from backend.settings import Settings
from tests.alerts.receiver import Receiver, running_receiver
from tests.conftest import VIEWER_EMAIL, _login

ALERTS = "/api/v1/admin/data-collection/alerts"
MAKE_DUE = """
INSERT INTO system_jobs (name, next_run_at) VALUES ($1, '-infinity')
ON CONFLICT (name) DO UPDATE SET next_run_at = '-infinity'
"""
EVALUATED = "SELECT next_run_at > now() FROM system_jobs WHERE name = $1"
_symbols = count(1)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as server:
        yield server


@pytest.fixture
def alert_settings(settings: Settings, receiver: Receiver) -> Settings:
    """Alerts posted to the receiver; evaluations every second; a config alerts after 2 failed runs; a
    failed post is retried after 1 s."""
    return replace(
        settings,
        alert_webhook_url=receiver.url,
        alert_evaluation_seconds=1,
        alert_failed_runs=2,
        alert_webhook_retry_max_seconds=1,
    )


@pytest.fixture
async def alert_client(alert_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app (its evaluator and webhook delivery running) with ``alert_settings``."""
    async with AsyncTestClient(app=create_app(alert_settings)) as test_client:
        yield test_client


@pytest.fixture
async def viewer(alert_client: AsyncTestClient[Litestar], pool: Pool) -> dict[str, str]:
    return {"Authorization": f"Bearer {await _login(alert_client, pool, VIEWER_EMAIL, 'viewer')}"}


async def evaluate_now(pool: Pool, settings: Settings) -> None:
    """Make the evaluation due and carry it out here; when a running app's evaluator took it first,
    wait until that one committed."""
    await pool.execute(MAKE_DUE, EVALUATION_JOB)
    if await evaluate_once(pool, settings=settings) is not None:
        return
    async with asyncio.timeout(10):  # a safety net, not a measure
        while not await pool.fetchval(EVALUATED, EVALUATION_JOB):
            await asyncio.sleep(0.02)


async def make_config(pool: Pool | Connection, *, enabled: bool = True, interval_minutes: int = 1) -> int:
    config_id: int = await pool.fetchval(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled) "
        "VALUES ($1, 'binance', ARRAY['1m'], $2, $3) RETURNING id",
        f"A{next(_symbols)}/USDT",
        interval_minutes,
        enabled,
    )
    return config_id


async def finish_run(
    pool: Pool | Connection,
    config_id: int,
    status: str,
    *,
    error: str | None = None,
    cause: str | None = None,
    missed_slots: int = 0,
    scheduled_for: datetime | None = None,
) -> int:
    """A run of ``config_id`` that ended with ``status``, as the collector logs one."""
    run_id: int = await pool.fetchval(
        "INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, "
        "scheduled_for, missed_slots, finished_at, duration_seconds, error_type, error_message, error_cause) "
        "SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, $2, $3, $4, $5, now(), 0.5, "
        "CASE WHEN $2 = 'failed' THEN 'NetworkError' END, $6, $7 FROM data_collection_configs WHERE id = $1 "
        "RETURNING id",
        config_id,
        status,
        "schedule" if scheduled_for is not None else "manual",
        scheduled_for,
        missed_slots,
        error,
        cause,
    )
    return run_id


async def failing_config(pool: Pool | Connection, *, error: str = "binance GET klines: 503") -> int:
    """An enabled config whose last 2 runs failed with ``error``."""
    config_id = await make_config(pool)
    for _ in range(2):
        await finish_run(pool, config_id, "failed", error=error)
    return config_id


async def read_alerts(client: AsyncTestClient[Litestar], headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get(ALERTS, headers=headers, params=query)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def subjects(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(alert["rule"], alert["subject"]) for alert in alerts]
