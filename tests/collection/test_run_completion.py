"""Runs that end together are written together: each still completed exactly once, counted once in
the run totals, and one bad outcome never costs the others theirs."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from backend.db.pool import Pool
from backend.runs import repository as runs
from backend.runs.completion import RunCompletion
from backend.runs.schemas import RunOutcome
from backend.runs.totals import read_run_totals
from backend.scheduling import repository as scheduling


async def _started_runs(pool: Pool, count: int) -> list[int]:
    config_ids = await pool.fetch(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes) "
        "SELECT 'G' || n || '/USDT', 'binance', '{1m}', 10 FROM generate_series(1, $1) AS n RETURNING id",
        count,
    )
    run_ids = []
    for row in config_ids:
        run_id = await runs.start_run(pool, config_id=row["id"], trigger="manual")
        await runs.begin_run(pool, run_id=run_id)
        run_ids.append(run_id)
    return run_ids


def _outcome(run_id: int, status: Any = "success", records: int = 3) -> RunOutcome:
    return RunOutcome(
        run_id=run_id,
        status=status,
        records_collected=records,
        duration_seconds=0.25,
        metadata={"timeframes_collected": 1, "timeframes_failed": 0, "timeframes": ["1m"]},
    )


async def _totals(pool: Pool) -> dict[str, tuple[int, int]]:
    return {row.status: (row.runs, row.candles_stored) for row in await read_run_totals(pool)}


async def test_runs_ending_together_are_each_completed_once_and_counted_once(pool: Pool) -> None:
    run_ids = await _started_runs(pool, 40)
    completion = RunCompletion(pool)

    closed = await asyncio.gather(*(completion.complete(_outcome(run_id)) for run_id in run_ids))
    again = await asyncio.gather(*(completion.complete(_outcome(run_id, "failed")) for run_id in run_ids))

    assert closed == [True] * 40
    assert again == [False] * 40
    rows = await pool.fetch(
        "SELECT status, records_collected, metadata, finished_at IS NOT NULL AS finished "
        "FROM job_execution_logs WHERE id = ANY($1::bigint[])",
        run_ids,
    )
    assert {(r["status"], r["records_collected"], r["finished"]) for r in rows} == {("success", 3, True)}
    assert all(r["metadata"]["timeframes"] == ["1m"] for r in rows)
    assert await _totals(pool) == {"success": (40, 120)}


async def test_a_run_closed_as_interrupted_gets_its_real_outcome_in_a_group_and_counts_once(pool: Pool) -> None:
    interrupted, running = await _started_runs(pool, 2)
    await pool.execute(
        "UPDATE job_execution_logs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", interrupted
    )
    assert await scheduling.close_stale_runs(pool, stale_after_seconds=60) == [interrupted]
    completion = RunCompletion(pool)

    closed = await asyncio.gather(completion.complete(_outcome(interrupted)), completion.complete(_outcome(running)))

    assert closed == [True, True]
    statuses = await pool.fetch(
        "SELECT status FROM job_execution_logs WHERE id = ANY($1::bigint[])", [interrupted, running]
    )
    assert {row["status"] for row in statuses} == {"success"}
    # the interrupted run was counted when it was closed; its own end adds only its candles
    assert await _totals(pool) == {"failed": (1, 0), "success": (1, 6)}


async def test_a_bad_outcome_in_a_group_fails_alone(pool: Pool) -> None:
    good, bad, other = await _started_runs(pool, 3)
    completion = RunCompletion(pool)

    results = await asyncio.gather(
        completion.complete(_outcome(good)),
        completion.complete(_outcome(bad, status="finished")),  # not a status the table takes
        completion.complete(_outcome(other)),
        return_exceptions=True,
    )

    assert results[0] is True
    assert isinstance(results[1], asyncpg.CheckViolationError)
    assert results[2] is True
    status = await pool.fetchval("SELECT status FROM job_execution_logs WHERE id = $1", bad)
    assert status == "running"


async def test_completing_a_run_that_never_existed_says_so(pool: Pool) -> None:
    assert await RunCompletion(pool).complete(_outcome(987654)) is False
