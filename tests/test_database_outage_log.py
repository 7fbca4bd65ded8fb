"""A PostgreSQL outage in the log: one line when it begins, a reminder a minute while it lasts, one
line when it ends, and no traceback, whatever met it (the scheduler, the event listener, runs in
progress, requests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

import asyncpg
import httpx
import pytest
import uvicorn

from backend.app import create_app
from backend.db.outage import DATABASE_OUTAGE, OutageLog
from backend.settings import Settings
from tests.collection.fake_binance import running_fake_binance
from tests.conftest import serving
from tests.faults import ThrowawayPostgres
from tests.scheduling.conftest import eventually

# timeframes of their own: two first runs creating one candle partition at once is another story
CONFIGS = """
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days)
VALUES ('BTC/USDT', 'binance', '{1m}', 1, 1), ('ETH/USDT', 'binance', '{1h}', 1, 1)
"""
RUNNING = "SELECT count(*) FROM job_execution_logs WHERE status = 'running' AND heartbeat_at IS NOT NULL"


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


async def _back(caplog: pytest.LogCaptureFixture) -> bool:
    return any(line.startswith("database reachable again") for line in _outage_lines(caplog))


async def test_an_outage_with_runs_and_requests_under_way_is_two_lines_without_a_traceback(
    settings: Settings, throwaway_postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    url = await throwaway_postgres.new_database()
    DATABASE_OUTAGE.forget()
    async with running_fake_binance(["BTC/USDT", "ETH/USDT"]) as fake:
        collecting = replace(
            settings,
            database_url=url,
            database_pool_min_size=0,
            scheduler_backend="inprocess",
            exchange_overrides=fake.exchange_overrides(),
            interval_unit_seconds=2,
            run_heartbeat_seconds=1,
            scheduler_heartbeat_seconds=1,
        )
        config = uvicorn.Config(create_app(collecting), host="127.0.0.1", port=0, log_level="info")
        async with serving(config) as base_url, httpx.AsyncClient(base_url=base_url) as http:
            writer = await asyncpg.connect(url)
            await writer.execute(CONFIGS)
            fake.latency_seconds = 1.0  # runs are fetching when the database goes
            await eventually(lambda: writer.fetchval(RUNNING), timeout=30)
            await writer.close()
            caplog.set_level(logging.INFO)
            caplog.clear()

            throwaway_postgres.stop()
            for _ in range(6):
                with contextlib.suppress(httpx.HTTPError):
                    await http.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever"})
                await asyncio.sleep(1)
            throwaway_postgres.start()
            await eventually(lambda: _back(caplog), timeout=60)

    lines = _outage_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unreachable (")
    assert lines[1].startswith("database reachable again after ")
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_that_lasts_is_recalled_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    outage = OutageLog(clock)
    refused = ConnectionRefusedError(111, "Connection refused")

    for second in range(0, 150, 2):  # a component fails every 2 s for two and a half minutes
        clock.now = 1000.0 + second
        outage.unreachable(refused)
    clock.now = 1150.0
    outage.reachable()
    outage.reachable()

    assert [record.getMessage() for record in caplog.records] == [
        "database unreachable (ConnectionRefusedError: [Errno 111] Connection refused); retrying until it is back",
        "database still unreachable after 60 s (ConnectionRefusedError)",
        "database still unreachable after 120 s (ConnectionRefusedError)",
        "database reachable again after 150 s",
    ]
