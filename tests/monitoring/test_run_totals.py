"""Run totals: every run that ends is counted by the statement that ends it, and the totals only grow.

Runs go through the repository functions the collector and the schedulers call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backend.db.pool import Pool
from backend.runs import repository as runs
from backend.runs.totals import RunHistogram, RunTotals, read_run_histograms, read_run_totals
from backend.scheduling import repository as scheduling
from backend.scheduling.retention import retain_logs


async def _config(pool: Pool, exchange: str = "binance", symbol: str = "BTC/USDT") -> int:
    config_id: int = await pool.fetchval(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes) "
        "VALUES ($1, $2, '{1m,1h}', 10) RETURNING id",
        symbol,
        exchange,
    )
    return config_id


async def _run(
    pool: Pool,
    config_id: int,
    *,
    status: Any = "success",
    duration: float = 1.5,
    records: int = 10,
    metadata: dict[str, Any] | None = None,
    late_by: timedelta | None = None,
    missed_slots: int = 0,
) -> int:
    """One run started (scheduled ``late_by`` before it began, or manual) and completed."""
    slot = None if late_by is None else datetime.now(UTC) - late_by
    run_id = await runs.start_run(
        pool,
        config_id=config_id,
        trigger="manual" if slot is None else "schedule",
        scheduled_for=slot,
        missed_slots=missed_slots,
    )
    await runs.begin_run(pool, run_id=run_id)
    await runs.complete_run(
        pool, run_id=run_id, status=status, duration_seconds=duration, records_collected=records, metadata=metadata
    )
    return run_id


def _totals(rows: list[RunTotals], **key: str) -> RunTotals:
    [row] = [r for r in rows if all(getattr(r, name) == value for name, value in key.items())]
    return row


def _histogram(rows: list[RunHistogram], histogram: str) -> dict[float, int]:
    [row] = [r for r in rows if r.histogram == histogram]
    return dict(zip(row.bounds, row.cumulative_runs, strict=True))


async def test_completed_runs_are_counted_by_exchange_trigger_and_status(pool: Pool) -> None:
    config_id = await _config(pool)
    await _run(pool, config_id, status="success", records=10)
    await _run(pool, config_id, status="success", records=5)
    await _run(pool, config_id, status="failed", records=0)

    totals = await read_run_totals(pool)

    success = _totals(totals, status="success")
    assert (success.job_type, success.exchange, success.trigger) == ("data_collection", "binance", "manual")
    assert (success.runs, success.duration_seconds, success.candles_stored) == (2, 3.0, 15)
    assert _totals(totals, status="failed").runs == 1


async def test_rejected_and_revised_candles_are_summed_over_timeframes(pool: Pool) -> None:
    config_id = await _config(pool)
    metadata = {
        "by_timeframe": {
            "1m": {"records": 7, "rejected_candles": 2, "revised": 3},
            "1h": {"records": 3, "rejected_candles": 1},  # nothing revised: no key
        }
    }
    await _run(pool, config_id, status="partial", metadata=metadata)
    await _run(pool, config_id, status="success", metadata={"timeframes": ["1m"]})  # no by_timeframe

    totals = await read_run_totals(pool)

    partial, success = _totals(totals, status="partial"), _totals(totals, status="success")
    assert (partial.candles_rejected, partial.candles_revised) == (3, 3)
    assert (success.candles_rejected, success.candles_revised) == (0, 0)


async def test_scheduled_runs_add_their_lateness_and_missed_slots(pool: Pool) -> None:
    config_id = await _config(pool)
    await _run(pool, config_id, late_by=timedelta(milliseconds=40), missed_slots=2)
    await _run(pool, config_id)  # manual: no lateness

    totals = await read_run_totals(pool)

    scheduled = _totals(totals, trigger="schedule")
    assert (scheduled.scheduled_runs, scheduled.missed_slots) == (1, 2)
    assert 0.04 <= scheduled.lateness_seconds < 1
    assert _totals(totals, trigger="manual").scheduled_runs == 0


async def test_durations_fall_in_the_bucket_at_or_above_them(pool: Pool) -> None:
    config_id = await _config(pool)
    for duration in (0.1, 1.0, 1.001, 700.0):
        await _run(pool, config_id, duration=duration)

    buckets = _histogram(await read_run_histograms(pool), "duration")

    assert (buckets[0.1], buckets[0.25], buckets[1.0], buckets[2.5], buckets[600.0]) == (1, 1, 2, 3, 3)
    assert buckets[float("inf")] == 4


async def test_totals_keep_the_runs_whose_logs_retention_deleted(pool: Pool) -> None:
    config_id = await _config(pool)
    old = await _run(pool, config_id, records=4)
    await pool.execute("UPDATE job_execution_logs SET started_at = now() - interval '40 days' WHERE id = $1", old)
    await _run(pool, config_id, records=6)

    await retain_logs(pool, retention_days=30)

    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs WHERE job_type = 'data_collection'") == 1
    collection = _totals(await read_run_totals(pool), job_type="data_collection")
    assert (collection.runs, collection.candles_stored) == (2, 10)


async def test_retention_run_is_counted_as_a_cleanup_job(pool: Pool) -> None:
    await retain_logs(pool, retention_days=30)

    cleanup = _totals(await read_run_totals(pool), job_type="cleanup")

    assert (cleanup.exchange, cleanup.trigger, cleanup.status, cleanup.runs) == ("", "system", "success", 1)


async def test_run_closed_as_interrupted_then_completed_counts_once_with_its_candles(pool: Pool) -> None:
    config_id = await _config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
    await runs.begin_run(pool, run_id=run_id)
    await pool.execute(
        "UPDATE job_execution_logs SET heartbeat_at = now() - interval '5 minutes' WHERE id = $1", run_id
    )
    assert await scheduling.close_stale_runs(pool, stale_after_seconds=60) == [run_id]

    await runs.complete_run(pool, run_id=run_id, status="success", duration_seconds=3.0, records_collected=12)

    totals = await read_run_totals(pool)
    assert sum(row.runs for row in totals) == 1
    assert _totals(totals, status="failed").runs == 1
    assert sum(row.candles_stored for row in totals) == 12


async def test_a_run_ended_by_its_scheduler_is_counted(pool: Pool) -> None:
    config_id = await _config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")

    await scheduling.fail_run_if_running(pool, run_id=run_id, error_type="RuntimeError", error_message="boom")

    assert _totals(await read_run_totals(pool), status="failed").runs == 1


async def test_completing_a_run_twice_counts_it_once(pool: Pool) -> None:
    config_id = await _config(pool)
    run_id = await _run(pool, config_id)

    closed = await runs.complete_run(pool, run_id=run_id, status="failed", duration_seconds=1.0, records_collected=0)

    assert closed is False
    assert [(row.status, row.runs) for row in await read_run_totals(pool)] == [("success", 1)]
