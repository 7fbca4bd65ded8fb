"""SCHEDULER_BACKEND=arq: real arq Workers in the test process, real Redis, real PostgreSQL; one
interval minute lasts one second and the workers' cron tick comes every second."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from backend.app import create_app
from backend.db.pool import Pool
from backend.runs.repository import start_run
from backend.scheduling.status import read_scheduler_status
from backend.scheduling.worker import create_worker
from backend.settings import Settings
from tests.collection.fake_binance import FakeBinance
from tests.scheduling.conftest import MakeConfig, StandInJob, StartWorker, eventually, login_admin

CONFIGS = "/api/v1/admin/data-collection/configs"


async def _runs(pool: Pool, config_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, trigger, status, scheduled_for, missed_slots, started_at, error_type, records_collected "
        "FROM job_execution_logs WHERE config_id = $1 ORDER BY scheduled_for, id",
        config_id,
    )
    return [dict(row) for row in rows]


async def _finished_runs(pool: Pool, config_id: int, at_least: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        runs = [run for run in await _runs(pool, config_id) if run["status"] != "running"]
        return runs if len(runs) >= at_least else []

    result: list[dict[str, Any]] = await eventually(probe, timeout=15)
    return result


async def _worker_beating(pool: Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM scheduler_heartbeats WHERE backend = 'arq'"))


async def _anchor(pool: Pool, config_id: int) -> Any:
    return await pool.fetchval("SELECT schedule_anchor_at FROM data_collection_configs WHERE id = $1", config_id)


async def test_a_worker_runs_each_slot_on_its_anchor_and_records_lateness(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    await start_worker(StandInJob(pool))
    await eventually(lambda: _worker_beating(pool))  # up first: its start-up never makes the first slot late
    config_id = await make_config(interval_minutes=2)

    runs = (await _finished_runs(pool, config_id, 3))[:3]

    anchor = await _anchor(pool, config_id)
    assert [run["scheduled_for"] - anchor for run in runs] == [timedelta(seconds=s) for s in (0, 2, 4)]
    assert all(run["trigger"] == "schedule" and run["status"] == "success" for run in runs)
    assert all(run["started_at"] >= run["scheduled_for"] for run in runs)


async def test_redis_keeps_nothing_of_a_run_that_ended(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker, arq_settings: Settings
) -> None:
    """A run's outcome is its log: a worker's Redis does not grow with every run, nor with every tick."""
    await start_worker(StandInJob(pool))
    config_id = await make_config(interval_minutes=1)
    await _finished_runs(pool, config_id, 3)

    redis = Redis.from_url(arq_settings.redis_url or "")
    try:
        kept = [key async for key in redis.scan_iter(match=f"arq:result:{arq_settings.arq_queue_name}*")]
    finally:
        await redis.aclose()
    assert kept == []


async def test_two_workers_run_each_slot_of_each_config_exactly_once(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    config_ids = [await make_config(interval_minutes=1) for _ in range(10)]
    one, two = StandInJob(pool, seconds=0.05), StandInJob(pool, seconds=0.05)
    await start_worker(one)
    await start_worker(two)
    await eventually(lambda: _every_config_ran(pool, configs=10, runs=4), timeout=30)

    duplicates = await pool.fetch(
        "SELECT config_id, scheduled_for FROM job_execution_logs WHERE config_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert duplicates == []
    assert not set(one.run_ids) & set(two.run_ids)
    for config_id in config_ids:
        runs = await _runs(pool, config_id)
        assert len(runs) >= 3
        gaps = [
            (later["scheduled_for"] - earlier["scheduled_for"], later["missed_slots"])
            for earlier, later in pairwise(runs)
        ]
        assert all(gap == timedelta(seconds=1 + missed) for gap, missed in gaps)


async def test_a_tick_claims_every_slot_due_before_the_next_one_not_only_what_the_workers_hold_at_once(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    await start_worker(StandInJob(pool), max_concurrent_jobs=1)
    await eventually(lambda: _worker_beating(pool))  # up first: its start-up never makes the first slots late
    # four slots a tick for one place; few enough that even a loaded machine runs them well within the
    # two ticks after which the workers count as behind (and ticks claim only what they have room for)
    config_ids = [await make_config(interval_minutes=3) for _ in range(4)]

    await eventually(lambda: _every_config_ran(pool, configs=4, runs=3), timeout=30)

    for config_id in config_ids:
        runs = [run for run in await _runs(pool, config_id) if run["status"] != "running"][:3]
        anchor = await _anchor(pool, config_id)
        assert [run["scheduled_for"] - anchor for run in runs] == [timedelta(seconds=s) for s in (0, 3, 6)], (
            anchor,
            await _runs(pool, config_id),
            await pool.fetch("SELECT * FROM scheduler_heartbeats"),
        )
        assert [run["missed_slots"] for run in runs] == [0, 0, 0]
        assert all(run["started_at"] >= run["scheduled_for"] for run in runs)


async def test_a_worker_starts_a_due_job_queued_behind_more_running_jobs_than_it_reads_at_once(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    release = asyncio.Event()
    busy = StandInJob(pool, release=release)
    await start_worker(busy, max_concurrent_jobs=2)  # three places: three long runs fill them
    held = [await make_config(interval_minutes=60) for _ in range(3)]
    await eventually(lambda: _started_runs(pool, held), timeout=15)
    free = StandInJob(pool)
    await start_worker(free, arq_options={"queue_read_limit": 2})  # reads two due jobs at a time

    config_id = await make_config(interval_minutes=60)

    runs = await _finished_runs(pool, config_id, 1)
    assert runs[0]["status"] == "success"
    assert runs[0]["id"] in free.run_ids
    assert len(busy.run_ids) == 3
    assert await _started_runs(pool, held)  # the three long runs still hold their places
    release.set()


async def _started_runs(pool: Pool, config_ids: list[int]) -> bool:
    started = await pool.fetchval(
        "SELECT count(*) FROM job_execution_logs WHERE config_id = ANY($1) AND status = 'running' "
        "AND heartbeat_at IS NOT NULL",
        config_ids,
    )
    return bool(started == len(config_ids))


async def test_slots_coalesce_once_the_workers_cannot_keep_up_and_none_runs_twice(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    config_ids = [await make_config(interval_minutes=1) for _ in range(6)]
    one, two = StandInJob(pool, seconds=1), StandInJob(pool, seconds=1)
    await start_worker(one, max_concurrent_jobs=1)
    await start_worker(two, max_concurrent_jobs=1)

    await eventually(lambda: _every_config_ran(pool, configs=6, runs=3), timeout=40)

    duplicates = await pool.fetch(
        "SELECT config_id, scheduled_for FROM job_execution_logs WHERE config_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert duplicates == []
    assert not set(one.run_ids) & set(two.run_ids)
    missed = 0
    for config_id in config_ids:
        runs = await _runs(pool, config_id)
        gaps = [
            (later["scheduled_for"] - earlier["scheduled_for"], later["missed_slots"])
            for earlier, later in pairwise(runs)
        ]
        assert all(gap == timedelta(seconds=1 + skipped) for gap, skipped in gaps)
        missed += sum(run["missed_slots"] for run in runs)
    assert missed > 0  # six runs due a second, two workers finishing two: slots were skipped, and counted


async def test_slots_due_while_no_worker_ran_collapse_into_one_run(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    config_id = await make_config(interval_minutes=1)
    await pool.execute(
        "UPDATE data_collection_configs SET schedule_anchor_at = now() - interval '5.5 seconds', "
        "next_run_at = now() - interval '5.5 seconds' WHERE id = $1",
        config_id,
    )

    await start_worker(StandInJob(pool))

    first = (await _finished_runs(pool, config_id, 1))[0]
    assert first["missed_slots"] >= 5
    assert (first["scheduled_for"] - await _anchor(pool, config_id)) % timedelta(seconds=1) == timedelta(0)


async def test_a_dead_workers_run_is_closed_as_interrupted(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker, insert_running_log: Any
) -> None:
    config_id = await make_config(interval_minutes=60, enabled=False)
    dead_run = await insert_running_log(config_id=config_id, age_seconds=30)

    await start_worker(StandInJob(pool))

    [run] = await _finished_runs(pool, config_id, 1)
    assert run["id"] == dead_run
    assert run["status"] == "failed"
    assert run["error_type"] == "Interrupted"


async def test_a_live_worker_shows_in_the_status_as_arq(pool: Pool, start_worker: StartWorker) -> None:
    await start_worker(StandInJob(pool))

    async def alive() -> Any:
        status = await read_scheduler_status(pool)
        return status if status.alive else None

    status = await eventually(alive)
    assert status.backend == "arq"


async def test_the_worker_runs_the_daily_log_retention(pool: Pool, start_worker: StartWorker) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at, finished_at) "
        "VALUES ('collect_data_1', 'data_collection', 'success', now() - interval '40 days', "
        "now() - interval '40 days')"
    )

    await start_worker(StandInJob(pool))

    sql = "SELECT metadata FROM job_execution_logs WHERE job_name = 'log_retention' AND status = 'success'"
    metadata = await eventually(lambda: pool.fetchval(sql))
    assert metadata["deleted_logs"] == 1


async def test_a_manual_trigger_through_the_api_runs_on_a_worker_with_the_real_collector(
    pool: Pool, arq_settings: Settings, fake: FakeBinance, start_worker: StartWorker
) -> None:
    settings = replace(arq_settings, exchange_overrides=fake.exchange_overrides())
    await start_worker(None, exchange_overrides=fake.exchange_overrides())
    async with AsyncTestClient(app=create_app(settings)) as client:
        headers = await login_admin(client, pool)
        body = {
            "symbol": "BTC/USDT",
            "timeframes": ["1h"],
            "interval_minutes": 60,
            "backfill_days": 1,
            "enabled": False,
        }
        config = (await client.post(CONFIGS, json=body, headers=headers)).json()

        response = await client.post(f"{CONFIGS}/{config['id']}/trigger", headers=headers)

    assert response.status_code == 202
    assert response.json()["message"] == "Data collection triggered for BTC/USDT"
    assert response.json()["arq_job_id"].endswith(f"collect_data_{config['id']}:run:{response.json()['run_id']}")
    [run] = await _finished_runs(pool, config["id"], 1)
    assert run["id"] == response.json()["run_id"]
    assert run["trigger"] == "manual"
    assert run["status"] == "success"
    assert run["records_collected"] > 0


async def test_sigterm_lets_the_grace_period_pass_then_cancels_the_run(
    pool: Pool, make_config: MakeConfig, fake: FakeBinance, start_worker: StartWorker
) -> None:
    fake.latency_seconds = 4  # longer than the grace period; the fake's teardown waits for it
    await pool.execute(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days) "
        "VALUES ('BTC/USDT', 'binance', ARRAY['1h'], 60, 1)"
    )
    worker = await start_worker(None, exchange_overrides=fake.exchange_overrides(), shutdown_grace_seconds=1)
    run_id = await eventually(lambda: pool.fetchval("SELECT id FROM job_execution_logs WHERE config_id IS NOT NULL"))
    await asyncio.sleep(0.5)

    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    await eventually(lambda: pool.fetchval("SELECT status <> 'running' FROM job_execution_logs WHERE id = $1", run_id))

    row = await pool.fetchrow("SELECT status, error_type FROM job_execution_logs WHERE id = $1", run_id)
    assert row is not None
    assert dict(row) == {"status": "failed", "error_type": "Cancelled"}


async def test_redis_down_keeps_the_api_up_readiness_names_it_and_trigger_is_503(
    pool: Pool, arq_settings: Settings, make_config: MakeConfig, unused_tcp_port: int
) -> None:
    settings = replace(arq_settings, redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0")
    config_id = await make_config(interval_minutes=60)
    async with AsyncTestClient(app=create_app(settings)) as client:
        headers = await login_admin(client, pool)  # login throttling falls back to memory
        listed = await client.get(CONFIGS, headers=headers)
        ready = await client.get("/health/ready")
        trigger = await client.post(f"{CONFIGS}/{config_id}/trigger", headers=headers)

    assert listed.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["components"]["database"] == "ok"
    assert ready.json()["components"]["redis"].startswith("unavailable")
    assert trigger.status_code == 503
    assert "Redis" in trigger.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs") == 0


async def test_deployments_sharing_one_redis_each_queue_their_own_tick_for_the_same_second(
    arq_settings: Settings, arq_redis: ArqRedis
) -> None:
    """Each deployment has its queue; a tick queued by one for a second does not stand for the
    other's tick of that second (which would then be skipped)."""
    queues = [arq_settings.arq_queue_name, f"{arq_settings.arq_queue_name}-other"]
    workers = [
        create_worker(replace(arq_settings, arq_queue_name=queue), redis_pool=arq_redis, handle_signals=False)
        for queue in queues
    ]
    now = datetime.now(UTC)
    for worker in workers:
        await worker.run_cron(now, worker.poll_delay_s)  # what each worker's poll does

    assert [await arq_redis.zcard(queue) for queue in queues] == [1, 1]


async def test_a_worker_starts_only_the_jobs_still_due_that_no_worker_runs(
    arq_settings: Settings, arq_redis: ArqRedis
) -> None:
    """Due job ids read a moment ago, while other workers went on: one was started by another
    worker, one ended (it left the queue), one was deferred again; only the fourth starts here, and
    only it and the other worker's are marked in progress."""
    queue = arq_settings.arq_queue_name
    worker = create_worker(arq_settings, redis_pool=arq_redis, handle_signals=False)
    free, elsewhere, ended, deferred = (f"{queue}:{name}" for name in ("free", "elsewhere", "ended", "deferred"))
    for job_id in (free, elsewhere, ended, deferred):
        await arq_redis.enqueue_job("a_job_this_worker_lacks", _job_id=job_id, _queue_name=queue)
    read = await arq_redis.zrangebyscore(queue, min=float("-inf"), max=timestamp_ms())
    await arq_redis.psetex(in_progress_key_prefix + elsewhere, 60_000, b"1")
    await arq_redis.zrem(queue, ended)
    await arq_redis.zadd(queue, {deferred: timestamp_ms() + 60_000})

    await worker.start_jobs(read)

    assert set(worker.tasks) == {free}
    marked = [
        job_id
        for job_id in (free, elsewhere, ended, deferred)
        if await arq_redis.exists(in_progress_key_prefix + job_id)
    ]
    assert marked == [free, elsewhere]
    await asyncio.gather(*worker.tasks.values())


async def _every_config_ran(pool: Pool, *, configs: int, runs: int) -> bool:
    sql = (
        "SELECT count(*) FROM (SELECT config_id FROM job_execution_logs WHERE trigger = 'schedule' "
        "AND status <> 'running' GROUP BY config_id HAVING count(*) >= $1) AS done"
    )
    return bool(await pool.fetchval(sql, runs) == configs)


async def test_disabling_stops_the_workers_runs_and_deleting_keeps_the_logs(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    disabled, deleted = await make_config(interval_minutes=1), await make_config(interval_minutes=1)
    await start_worker(StandInJob(pool))
    await _finished_runs(pool, disabled, 1)
    deleted_runs = await _finished_runs(pool, deleted, 1)

    await pool.execute("UPDATE data_collection_configs SET enabled = false WHERE id = $1", disabled)
    await pool.execute("DELETE FROM data_collection_configs WHERE id = $1", deleted)
    disabled_count = len(await _runs(pool, disabled))
    await asyncio.sleep(3)

    assert len(await _runs(pool, disabled)) <= disabled_count + 1  # at most the slot claimed while disabling
    orphans = await pool.fetch(
        "SELECT id FROM job_execution_logs WHERE config_id IS NULL AND job_type = 'data_collection'"
    )
    assert {run["id"] for run in deleted_runs} <= {row["id"] for row in orphans}
    assert len(orphans) <= len(deleted_runs) + 2  # runs in progress or queued when it was deleted


async def test_a_run_queued_while_no_worker_is_up_is_run_by_the_first_worker_even_after_the_stale_time(
    pool: Pool, arq_settings: Settings, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    config_id = await make_config(interval_minutes=60, enabled=False)
    async with AsyncTestClient(app=create_app(arq_settings)) as client:
        headers = await login_admin(client, pool)
        triggered = (await client.post(f"{CONFIGS}/{config_id}/trigger", headers=headers)).json()
    older_than_stale = "SELECT started_at < now() - make_interval(secs => $1 + 1) FROM job_execution_logs WHERE id = $2"
    await eventually(lambda: pool.fetchval(older_than_stale, arq_settings.stale_run_seconds, triggered["run_id"]))

    await start_worker(StandInJob(pool))

    [run] = await _finished_runs(pool, config_id, 1)
    assert run["id"] == triggered["run_id"]
    assert run["status"] == "success"


async def test_a_run_whose_job_redis_lost_is_queued_again_and_runs(
    pool: Pool, make_config: MakeConfig, start_worker: StartWorker
) -> None:
    config_id = await make_config(interval_minutes=60, enabled=False)
    lost = await start_run(pool, config_id=config_id, trigger="manual")  # its job never reached Redis
    await pool.execute("UPDATE job_execution_logs SET started_at = now() - interval '30 seconds' WHERE id = $1", lost)

    await start_worker(StandInJob(pool))

    [run] = await _finished_runs(pool, config_id, 1)
    assert run["id"] == lost
    assert run["status"] == "success"
