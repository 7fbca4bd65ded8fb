"""The in-process scheduler against the real database; one interval minute lasts one second."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

from backend.db.pool import Pool
from backend.errors import ConflictError
from backend.runs.repository import start_run
from backend.scheduling.status import read_scheduler_status
from tests.scheduling.conftest import MakeConfig, StandInJob, StartScheduler, eventually


async def _runs(pool: Pool, config_id: int | None = None) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, config_id, trigger, status, scheduled_for, missed_slots, started_at, error_type, duration_seconds "
        "FROM job_execution_logs WHERE job_type = 'data_collection' AND ($1::bigint IS NULL OR config_id = $1) "
        "ORDER BY scheduled_for, id",
        config_id,
    )
    return [dict(row) for row in rows]


async def _anchor(pool: Pool, config_id: int) -> Any:
    return await pool.fetchval("SELECT schedule_anchor_at FROM data_collection_configs WHERE id = $1", config_id)


async def _finished_runs(pool: Pool, config_id: int, at_least: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        runs = [run for run in await _runs(pool, config_id) if run["status"] != "running"]
        return runs if len(runs) >= at_least else []

    result: list[dict[str, Any]] = await eventually(probe)
    return result


async def test_a_new_enabled_config_runs_at_its_first_slot(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60)
    await start_scheduler(StandInJob(pool))

    [run] = await _finished_runs(pool, config_id, 1)

    assert run["trigger"] == "schedule"
    assert run["status"] == "success"
    assert run["scheduled_for"] == await _anchor(pool, config_id)
    assert run["missed_slots"] == 0
    assert run["started_at"] >= run["scheduled_for"]


async def test_slots_stay_on_their_anchor_over_many_runs(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    await start_scheduler(StandInJob(pool, seconds=0.3))  # first: its start never makes the first slot late
    config_id = await make_config(interval_minutes=1)

    runs = (await _finished_runs(pool, config_id, 5))[:5]

    anchor = await _anchor(pool, config_id)
    assert [run["scheduled_for"] - anchor for run in runs] == [timedelta(seconds=k) for k in range(5)]
    assert all(run["missed_slots"] == 0 for run in runs)
    assert all(run["started_at"] >= run["scheduled_for"] for run in runs)  # lateness = started_at - scheduled_for


async def test_a_config_still_running_is_not_started_again_and_its_missed_slots_are_counted(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=1)
    release = asyncio.Event()
    await start_scheduler(StandInJob(pool, release=release))
    await eventually(lambda: _runs(pool, config_id))
    await asyncio.sleep(3.2)  # slots 1, 2 and 3 come due while slot 0 runs
    assert len(await _runs(pool, config_id)) == 1

    release.set()
    first, second = (await _finished_runs(pool, config_id, 2))[:2]

    assert second["missed_slots"] >= 2
    assert second["scheduled_for"] - first["scheduled_for"] == timedelta(seconds=1 + second["missed_slots"])
    assert first["missed_slots"] == 0


async def test_changing_the_interval_restarts_the_schedule_from_now(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=600)
    await start_scheduler(StandInJob(pool))
    await _finished_runs(pool, config_id, 1)

    await pool.execute("UPDATE data_collection_configs SET interval_minutes = 2 WHERE id = $1", config_id)
    runs = await _finished_runs(pool, config_id, 3)

    anchor = await _anchor(pool, config_id)
    assert [run["scheduled_for"] - anchor for run in runs[1:3]] == [timedelta(0), timedelta(seconds=2)]


async def test_disabling_stops_new_runs(pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler) -> None:
    config_id = await make_config(interval_minutes=1)
    await start_scheduler(StandInJob(pool))
    await _finished_runs(pool, config_id, 1)

    await pool.execute("UPDATE data_collection_configs SET enabled = false WHERE id = $1", config_id)
    count = len(await _runs(pool, config_id))
    await asyncio.sleep(2.5)

    assert len(await _runs(pool, config_id)) <= count + 1  # at most the slot claimed while disabling


async def test_enabling_runs_again_at_once_without_counting_the_disabled_time_as_missed(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=1, enabled=False)
    await start_scheduler(StandInJob(pool))
    await asyncio.sleep(2.5)
    assert await _runs(pool, config_id) == []

    await pool.execute("UPDATE data_collection_configs SET enabled = true WHERE id = $1", config_id)
    [run] = (await _finished_runs(pool, config_id, 1))[:1]

    assert run["missed_slots"] == 0
    assert run["scheduled_for"] == await _anchor(pool, config_id)


async def test_deleting_stops_runs_and_keeps_the_logs(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=1)
    await start_scheduler(StandInJob(pool))
    runs = await _finished_runs(pool, config_id, 2)

    await pool.execute("DELETE FROM data_collection_configs WHERE id = $1", config_id)
    await asyncio.sleep(2.5)

    orphans = await _runs(pool, None)
    assert {run["id"] for run in runs} <= {run["id"] for run in orphans}
    assert all(run["config_id"] is None for run in orphans)
    assert len(orphans) <= len(runs) + 1  # at most the run in progress when it was deleted


async def test_a_config_created_by_another_process_wakes_the_sleeping_scheduler(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    await start_scheduler(StandInJob(pool), scheduler_heartbeat_seconds=60)  # no re-check during the test
    await asyncio.sleep(0.3)  # the scheduler has found nothing to do and sleeps

    config_id = await make_config(interval_minutes=60)

    assert await _finished_runs(pool, config_id, 1)


async def test_a_restarted_scheduler_resumes_with_the_missed_slots_collapsed_into_one_run(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=1)
    first = await start_scheduler(StandInJob(pool))
    await _finished_runs(pool, config_id, 1)
    await first.stop()
    before = len(await _runs(pool, config_id))
    await asyncio.sleep(3.5)

    await start_scheduler(StandInJob(pool))
    runs = await _finished_runs(pool, config_id, before + 1)

    resumed = runs[before]
    anchor = await _anchor(pool, config_id)
    assert resumed["missed_slots"] >= 2
    assert (resumed["scheduled_for"] - anchor) % timedelta(seconds=1) == timedelta(0)


async def test_two_schedulers_run_each_slot_of_each_config_exactly_once(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_ids = [await make_config(interval_minutes=1) for _ in range(20)]
    one, two = StandInJob(pool, seconds=0.05), StandInJob(pool, seconds=0.05)
    await start_scheduler(one)
    await start_scheduler(two)
    await eventually(lambda: _every_config_ran(pool, configs=20, runs=4), timeout=30)

    rows = await pool.fetch(
        "SELECT config_id, scheduled_for, count(*) AS runs FROM job_execution_logs WHERE config_id IS NOT NULL "
        "GROUP BY config_id, scheduled_for HAVING count(*) > 1"
    )
    assert rows == []
    assert one.run_ids, "the first scheduler took a share"
    assert two.run_ids, "the second scheduler took a share"
    assert not set(one.run_ids) & set(two.run_ids)
    for config_id in config_ids:
        runs = await _runs(pool, config_id)
        assert len(runs) >= 4
        # every slot either ran once or is counted as missed by the run after it
        gaps = [
            (later["scheduled_for"] - earlier["scheduled_for"], later["missed_slots"])
            for earlier, later in pairwise(runs)
        ]
        assert all(gap == timedelta(seconds=1 + missed) for gap, missed in gaps)


async def test_no_more_runs_than_max_concurrent_jobs_at_once(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    for _ in range(5):
        await make_config(interval_minutes=60)
    release = asyncio.Event()
    await start_scheduler(StandInJob(pool, release=release), max_concurrent_jobs=2)
    await eventually(lambda: _count(pool, "running", 2))
    await asyncio.sleep(0.5)

    assert await _count(pool, "running", 2)
    release.set()
    await eventually(lambda: _count(pool, "success", 5))


async def _count(pool: Pool, status: str, expected: int) -> bool:
    sql = "SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection' AND status = $1"
    return bool(await pool.fetchval(sql, status) == expected)


async def test_a_run_whose_process_died_is_closed_as_interrupted_and_the_config_runs_again(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler, insert_running_log: Any
) -> None:
    config_id = await make_config(interval_minutes=1)
    dead_run = await insert_running_log(config_id=config_id, age_seconds=30)
    await start_scheduler(StandInJob(pool))

    runs = await _finished_runs(pool, config_id, 2)

    dead = next(run for run in runs if run["id"] == dead_run)
    assert dead["status"] == "failed"
    assert dead["error_type"] == "Interrupted"
    assert dead["duration_seconds"] == round(dead["duration_seconds"], 3)  # rounded as the stats are
    assert any(run["trigger"] == "schedule" and run["status"] == "success" for run in runs)


async def test_a_queued_run_whose_process_died_before_starting_it_is_run_by_another(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60, enabled=False)
    orphan = await start_run(pool, config_id=config_id, trigger="manual")
    await pool.execute("UPDATE job_execution_logs SET started_at = now() - interval '30 seconds' WHERE id = $1", orphan)

    await start_scheduler(StandInJob(pool))

    [run] = await _finished_runs(pool, config_id, 1)
    assert run["id"] == orphan
    assert run["status"] == "success"


async def test_shutdown_cancels_runs_that_outlive_the_grace_period(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60)
    scheduler = await start_scheduler(StandInJob(pool, seconds=30), shutdown_grace_seconds=1)
    await eventually(lambda: _runs(pool, config_id))

    await scheduler.stop()

    [run] = await _runs(pool, config_id)
    assert run["status"] == "failed"
    assert run["error_type"] == "Cancelled"


async def test_shutdown_lets_short_runs_finish(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60)
    scheduler = await start_scheduler(StandInJob(pool, seconds=0.5), shutdown_grace_seconds=5)
    await eventually(lambda: _runs(pool, config_id))

    await scheduler.stop()

    [run] = await _runs(pool, config_id)
    assert run["status"] == "success"


async def test_a_manual_trigger_runs_at_once_even_when_the_config_is_disabled(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60, enabled=False)
    scheduler = await start_scheduler(StandInJob(pool))

    triggered = await scheduler.trigger(config_id)

    [run] = await _finished_runs(pool, config_id, 1)
    assert run["id"] == triggered.run_id
    assert run["trigger"] == "manual"
    assert run["scheduled_for"] is None


async def test_a_manual_trigger_while_the_config_runs_is_a_conflict(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    config_id = await make_config(interval_minutes=60)
    release = asyncio.Event()
    scheduler = await start_scheduler(StandInJob(pool, release=release))
    await eventually(lambda: _runs(pool, config_id))

    with pytest.raises(ConflictError, match="already running"):
        await scheduler.trigger(config_id)
    release.set()


async def test_a_scheduler_woken_at_the_moment_it_is_stopped_stops(pool: Pool, start_scheduler: StartScheduler) -> None:
    """A wake-up (a NOTIFY, a run ending) that lands in the same instant as the stop must not swallow it."""
    scheduler = await start_scheduler(StandInJob(pool), scheduler_heartbeat_seconds=60)
    await asyncio.sleep(0.3)  # the scheduler has found nothing to do and sleeps until woken

    scheduler._on_notify()  # what a NOTIFY on its channel calls, in the same loop step as the stop
    stopping = asyncio.create_task(scheduler.stop())
    stopped, _ = await asyncio.wait({stopping}, timeout=10)

    assert stopped, "the scheduler still had not stopped 10 s later"
    assert (await read_scheduler_status(pool)).alive is False


async def test_a_running_scheduler_shows_in_the_status_and_leaves_it_when_stopped(
    pool: Pool, start_scheduler: StartScheduler
) -> None:
    scheduler = await start_scheduler(StandInJob(pool))
    await eventually(lambda: read_scheduler_status(pool))

    alive = await eventually(lambda: _alive(pool))
    await scheduler.stop()

    assert alive.backend == "inprocess"
    assert (await read_scheduler_status(pool)).alive is False


async def _alive(pool: Pool) -> Any:
    status = await read_scheduler_status(pool)
    return status if status.alive else None


async def _every_config_ran(pool: Pool, *, configs: int, runs: int) -> bool:
    sql = (
        "SELECT count(*) FROM (SELECT config_id FROM job_execution_logs WHERE trigger = 'schedule' "
        "AND status <> 'running' GROUP BY config_id HAVING count(*) >= $1) AS done"
    )
    return bool(await pool.fetchval(sql, runs) == configs)
