"""The daily log-retention job: old logs go in batches, the job logs itself, once a day across processes."""

from __future__ import annotations

import asyncio

from backend.db.pool import Pool
from backend.scheduling import repository
from backend.scheduling.retention import retain_logs
from backend.scheduling.runs import LOG_RETENTION_JOB


async def _insert_finished_logs(pool: Pool, *, count: int, days_ago: float) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at, finished_at) "
        "SELECT 'collect_data_1', 'data_collection', 'success', now() - make_interval(days => $2), "
        "now() - make_interval(days => $2) FROM generate_series(1, $1)",
        count,
        days_ago,
    )


async def test_logs_older_than_the_retention_go_and_newer_ones_stay(pool: Pool) -> None:
    await _insert_finished_logs(pool, count=25, days_ago=31)
    await _insert_finished_logs(pool, count=7, days_ago=29)

    await retain_logs(pool, retention_days=30, batch_size=10)

    remaining = await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'")
    assert remaining == 7


async def test_the_job_is_logged_as_a_cleanup_with_what_it_deleted(pool: Pool) -> None:
    await _insert_finished_logs(pool, count=25, days_ago=40)

    run_id = await retain_logs(pool, retention_days=30, batch_size=10)

    row = await pool.fetchrow("SELECT * FROM job_execution_logs WHERE id = $1", run_id)
    assert row is not None
    assert row["job_type"] == "cleanup"
    assert row["job_name"] == LOG_RETENTION_JOB
    assert row["trigger"] == "system"
    assert row["status"] == "success"
    assert row["finished_at"] is not None
    assert row["duration_seconds"] == round(row["duration_seconds"], 3)  # rounded as the stats are
    assert row["metadata"] == {
        "deleted_logs": 25,
        "retention_days": 30,
        "batch_size": 10,
        "created_partitions": [],
        "dropped_partitions": [],
        "compacted_partitions": [],
    }


async def test_a_run_still_going_is_never_deleted(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at) "
        "VALUES ('collect_data_1', 'data_collection', 'running', now() - interval '40 days')"
    )

    await retain_logs(pool, retention_days=30)

    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE status = 'running'") == 1


async def test_only_one_of_many_processes_runs_it_each_day(pool: Pool) -> None:
    claims = await asyncio.gather(*(repository.claim_system_job(pool, name=LOG_RETENTION_JOB) for _ in range(8)))

    assert claims.count(True) == 1
    assert await repository.claim_system_job(pool, name=LOG_RETENTION_JOB) is False
    next_run = await pool.fetchval("SELECT next_run_at FROM system_jobs WHERE name = $1", LOG_RETENTION_JOB)
    assert next_run == await pool.fetchval("SELECT date_trunc('day', now(), 'UTC') + interval '1 day'")
