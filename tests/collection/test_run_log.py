"""The execution-log lifecycle of a run: started, alive, completed or discarded."""

from __future__ import annotations

import asyncpg
import pytest

from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate
from backend.db.pool import Pool
from backend.errors import ConflictError, NotFoundError
from backend.runs import repository as runs


async def _config_id(pool: Pool) -> int:
    data = ConfigCreate(symbol="BTC/USDT", timeframes=["1m", "1h"], interval_minutes=10)
    return (await configs.create_config(pool, data=data, created_by=None)).id


async def test_start_run_writes_a_queued_running_row_named_after_the_config(pool: Pool) -> None:
    config_id = await _config_id(pool)

    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")

    row = await pool.fetchrow("SELECT * FROM job_execution_logs WHERE id = $1", run_id)
    assert row is not None
    assert row["status"] == "running"
    assert row["job_name"] == f"collect_data_{config_id}"
    assert row["job_type"] == "data_collection"
    assert (row["symbol"], row["exchange"], row["trigger"]) == ("BTC/USDT", "binance", "manual")
    assert row["heartbeat_at"] is None  # queued: no process has started it yet


async def test_second_start_while_running_is_a_conflict_naming_the_run(pool: Pool) -> None:
    config_id = await _config_id(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")

    with pytest.raises(ConflictError, match=f"already running \\(run {run_id}\\)"):
        await runs.start_run(pool, config_id=config_id, trigger="manual")


async def test_conflict_inside_a_transaction_leaves_the_transaction_usable(pool: Pool) -> None:
    config_id = await _config_id(pool)
    await runs.start_run(pool, config_id=config_id, trigger="manual")
    conn: asyncpg.Connection[asyncpg.Record]
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(ConflictError):
            await runs.start_run(conn, config_id=config_id, trigger="schedule")
        assert await conn.fetchval("SELECT count(*) FROM job_execution_logs") == 1


async def test_start_run_of_an_unknown_config_is_not_found(pool: Pool) -> None:
    with pytest.raises(NotFoundError, match="Config 999 not found"):
        await runs.start_run(pool, config_id=999, trigger="manual")


async def test_complete_run_records_the_outcome_and_frees_the_config(pool: Pool) -> None:
    config_id = await _config_id(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")

    closed = await runs.complete_run(
        pool,
        run_id=run_id,
        status="partial",
        duration_seconds=1.5,
        records_collected=42,
        error_message="1h: BadSymbol",
        error_type="BadSymbol",
        metadata={"timeframes_collected": 1, "timeframes_failed": 1, "timeframes": ["1m", "1h"]},
    )

    row = await pool.fetchrow("SELECT * FROM job_execution_logs WHERE id = $1", run_id)
    assert closed
    assert row is not None
    assert (row["status"], row["records_collected"], row["duration_seconds"]) == ("partial", 42, 1.5)
    assert row["finished_at"] >= row["started_at"]
    assert row["metadata"]["timeframes_failed"] == 1
    assert await runs.start_run(pool, config_id=config_id, trigger="manual") > run_id


async def test_completing_a_run_twice_changes_nothing_the_second_time(pool: Pool) -> None:
    run_id = await runs.start_run(pool, config_id=await _config_id(pool), trigger="manual")
    await runs.complete_run(pool, run_id=run_id, status="success", duration_seconds=1.0, records_collected=3)

    closed = await runs.complete_run(
        pool, run_id=run_id, status="failed", duration_seconds=2.0, records_collected=0, error_type="Interrupted"
    )

    assert not closed
    assert await pool.fetchval("SELECT status FROM job_execution_logs WHERE id = $1", run_id) == "success"


async def test_the_runs_own_outcome_replaces_a_close_as_interrupted(pool: Pool) -> None:
    """Stale-run detection guessed the process had died (a database outage stopped its heartbeat);
    the process then writes what really happened."""
    run_id = await runs.start_run(pool, config_id=await _config_id(pool), trigger="manual")
    await pool.execute(
        "UPDATE job_execution_logs SET status = 'failed', error_type = 'Interrupted', finished_at = now() "
        "WHERE id = $1",
        run_id,
    )

    closed = await runs.complete_run(
        pool, run_id=run_id, status="success", duration_seconds=2.0, records_collected=7, metadata={"timeframes": []}
    )

    row = await pool.fetchrow(
        "SELECT status, error_type, records_collected FROM job_execution_logs WHERE id = $1", run_id
    )
    assert closed
    assert row is not None
    assert dict(row) == {"status": "success", "error_type": None, "records_collected": 7}


async def test_beginning_a_run_sets_the_configs_last_run_at_to_the_runs_start(pool: Pool) -> None:
    config_id = await _config_id(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")

    await runs.begin_run(pool, run_id=run_id)

    started_at = await pool.fetchval("SELECT started_at FROM job_execution_logs WHERE id = $1", run_id)
    assert await pool.fetchval("SELECT last_run_at FROM data_collection_configs WHERE id = $1", config_id) == started_at


async def test_delete_run_removes_the_row(pool: Pool) -> None:
    run_id = await runs.start_run(pool, config_id=await _config_id(pool), trigger="schedule")

    await runs.delete_run(pool, run_id=run_id)

    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs") == 0
