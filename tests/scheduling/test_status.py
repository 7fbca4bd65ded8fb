"""The scheduler state that GET /status shows, read from the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from backend.db.pool import Pool
from backend.scheduling import repository
from backend.scheduling.status import read_scheduler_status
from tests.scheduling.conftest import MakeConfig


async def test_nothing_scheduled_and_no_scheduler(pool: Pool) -> None:
    status = await read_scheduler_status(pool)

    assert status.backend is None
    assert status.alive is False
    assert status.schedulers_alive == 0
    assert status.heartbeat_age_seconds is None
    assert status.next_run_at is None
    assert status.runs_in_progress == 0
    assert status.active_jobs == 0


async def test_a_beating_scheduler_is_alive_with_its_backend(pool: Pool) -> None:
    await repository.beat(pool, scheduler_id="web.1:42", backend="inprocess", lease_seconds=30)

    status = await read_scheduler_status(pool)

    assert status.alive is True
    assert status.backend == "inprocess"
    assert status.schedulers_alive == 1
    assert status.heartbeat_age_seconds is not None
    assert 0 <= status.heartbeat_age_seconds < 30


async def test_a_scheduler_whose_lease_ran_out_is_not_alive(pool: Pool) -> None:
    await repository.beat(pool, scheduler_id="worker.1:7", backend="arq", lease_seconds=0)

    status = await read_scheduler_status(pool)

    assert status.alive is False
    assert status.backend is None
    assert status.heartbeat_age_seconds is not None


async def test_a_scheduler_that_stopped_cleanly_is_gone(pool: Pool) -> None:
    await repository.beat(pool, scheduler_id="web.1:42", backend="inprocess", lease_seconds=30)
    await repository.remove_heartbeat(pool, scheduler_id="web.1:42")

    assert (await read_scheduler_status(pool)).alive is False


async def test_next_run_is_the_earliest_slot_of_an_enabled_config(pool: Pool, make_config: MakeConfig) -> None:
    soon, later, disabled = await make_config(), await make_config(), await make_config(enabled=False)
    now = datetime.now(UTC)
    for config_id, offset in ((soon, 60), (later, 600), (disabled, 5)):
        await pool.execute(
            "UPDATE data_collection_configs SET next_run_at = $2 WHERE id = $1",
            config_id,
            now + timedelta(seconds=offset),
        )

    status = await read_scheduler_status(pool)

    assert status.next_run_at == now + timedelta(seconds=60)
    assert status.scheduled_configs == 2


async def test_active_jobs_are_enabled_configs_plus_runs_outside_them_counted_once(
    pool: Pool, make_config: MakeConfig, insert_running_log: Callable[..., Awaitable[int]]
) -> None:
    enabled_running, _enabled_idle = await make_config(), await make_config()
    disabled = await make_config(enabled=False)
    await insert_running_log(config_id=enabled_running)
    await insert_running_log(config_id=disabled)
    await insert_running_log(config_id=None, job_type="cleanup")

    status = await read_scheduler_status(pool)

    assert status.runs_in_progress == 3
    assert status.scheduled_configs == 2
    assert status.active_jobs == 2 + 2  # two scheduled configs, plus the disabled config's run and the cleanup
