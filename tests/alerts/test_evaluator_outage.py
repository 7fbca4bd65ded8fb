"""The evaluator through a database outage: the process logs it once when it starts and once when it ends, never per
attempt."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace

import pytest

from backend.alerts.tasks import AlertTasks
from backend.db.outage import DATABASE_OUTAGE
from backend.db.pool import create_pool
from backend.settings import Settings
from tests.faults import ThrowawayPostgres
from tests.scheduling.conftest import eventually

DOWN_SECONDS = 3.5  # three evaluations' time


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    settings: Settings, throwaway_postgres: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    DATABASE_OUTAGE.forget()
    caplog.set_level(logging.INFO, logger="backend")
    url = await throwaway_postgres.new_database()
    pool = await create_pool(url, min_size=0, max_size=2)
    tasks = AlertTasks(pool, settings=replace(settings, database_url=url, alert_evaluation_seconds=1))
    tasks.start()
    try:

        async def evaluated() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM system_jobs WHERE name = 'alert_evaluation'"))

        await eventually(evaluated)
        throwaway_postgres.stop()
        await asyncio.sleep(DOWN_SECONDS)
        throwaway_postgres.start()

        async def back() -> bool:
            return "database reachable again" in caplog.text

        await eventually(back, timeout=20)
    finally:
        await tasks.stop()
        await pool.close()

    assert caplog.text.count("database unreachable (") == 1
    away = re.search(r"database reachable again after (\d+) s", caplog.text)
    assert away is not None
    assert int(away.group(1)) >= 1
    assert caplog.text.count("database reachable again") == 1
    assert "alert evaluation" not in caplog.text  # the outage is the process's news, not the loop's
