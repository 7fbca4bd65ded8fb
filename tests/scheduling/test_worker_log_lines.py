"""What an arq worker writes to the log: nothing at INFO while idle (its ticks are routine, at DEBUG),
and a line as each run's job starts and ends."""

from __future__ import annotations

import logging

import pytest
from arq.worker import Worker

from backend.db.pool import Pool
from tests.scheduling.conftest import MakeConfig, StandInJob, StartWorker, eventually

# four ticks of a second each, with room for a loaded machine (the wait ends at the fourth)
TICKS_WAIT_SECONDS = 30


async def test_an_idle_worker_logs_its_ticks_at_debug_only(
    pool: Pool, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    worker = await start_worker(StandInJob(pool))
    await eventually(lambda: _started(pool, worker))
    caplog.clear()

    await eventually(lambda: _ticked(worker, 4), timeout=TICKS_WAIT_SECONDS)

    ticks = [record for record in caplog.records if "schedule_tick" in record.getMessage()]
    assert len(ticks) >= 3
    assert {record.levelname for record in ticks} == {"DEBUG"}
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO] == []


async def test_an_idle_worker_writes_nothing_at_the_default_level(
    pool: Pool, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    worker = await start_worker(StandInJob(pool))
    await eventually(lambda: _started(pool, worker))
    caplog.clear()

    await eventually(lambda: _ticked(worker, 4), timeout=TICKS_WAIT_SECONDS)

    assert [record.getMessage() for record in caplog.records] == []


async def test_a_runs_job_is_logged_at_info_as_it_starts_and_ends(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await make_config(interval_minutes=60)
    await start_worker(StandInJob(pool))

    lines = await eventually(lambda: _collect_lines(caplog))

    assert [(record.levelname, record.getMessage().split()[1]) for record in lines] == [("INFO", "→"), ("INFO", "←")]


async def _started(pool: Pool, worker: Worker) -> bool:
    """The worker ticked, and the system jobs (the day's log retention, one line a day, and the hour's
    run history) are behind it."""
    finished = await pool.fetchval(
        "SELECT count(*) FROM job_execution_logs WHERE job_type = 'cleanup' AND status <> 'running'"
    )
    return finished >= 2 and await _ticked(worker, 1)


async def _ticked(worker: Worker, times: int) -> bool:
    return worker.jobs_complete >= times  # the ticks are the only jobs of an idle worker


async def _collect_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    lines = [record for record in caplog.records if ":collect" in record.getMessage()]
    return lines if len(lines) >= 2 else []
