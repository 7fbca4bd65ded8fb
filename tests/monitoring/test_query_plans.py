"""The stats and list queries use the indexes made for them (EXPLAIN on a seeded table; no timings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from backend.db.pool import Pool
from backend.monitoring import repository
from backend.monitoring.schemas import LogFilters

SEED = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger,
                                started_at, finished_at, duration_seconds, records_collected, error_message)
SELECT 'collect_data_' || (n % 50 + 1), 'data_collection', NULL, 'S' || (n % 50) || '/USDT', 'binance',
       CASE WHEN n % 20 = 0 THEN 'failed' ELSE 'success' END, 'schedule',
       now() - (n * interval '30 seconds'), now() - (n * interval '30 seconds') + interval '2 seconds',
       2, 100, CASE WHEN n % 20 = 0 THEN 'boom' END
FROM generate_series(1, 60000) AS n
"""


@pytest.fixture
async def seeded(pool: Pool) -> Pool:
    """60,000 runs over about 3 weeks, vacuumed and analysed as autovacuum would leave them."""
    await pool.execute(SEED)
    await pool.execute("VACUUM ANALYZE job_execution_logs")
    return pool


def _nodes(plan: Any) -> list[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, dict):
        return [plan, *(node for value in plan.values() for node in _nodes(value))]
    if isinstance(plan, list):
        return [node for item in plan for node in _nodes(item)]
    return []


def _index_names(plan: Any) -> set[str]:
    return {node["Index Name"] for node in _nodes(plan) if "Index Name" in node}


def _seq_scanned(plan: Any) -> set[str]:
    """The tables the plan reads whole (an empty partition may be: nothing to read)."""
    return {node["Relation Name"] for node in _nodes(plan) if node.get("Node Type") == "Seq Scan"}


async def _plan(pool: Pool, sql: str, *parameters: Any) -> Any:
    text = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *parameters)
    return msgspec.json.decode(text) if isinstance(text, str) else text


def _since(hours: int) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


async def test_stats_of_a_day_sum_the_minute_counts_and_probe_the_start_index(seeded: Pool) -> None:
    since = _since(24).replace(second=0, microsecond=0)

    plan = await _plan(seeded, repository.STATS, since, "data_collection")

    assert _index_names(plan) == {"job_execution_minutes_pkey", "job_execution_logs_started_at_idx"}
    assert '"Seq Scan"' not in msgspec.json.encode(plan).decode()


async def test_timeseries_of_a_week_scans_a_started_at_index_range(seeded: Pool) -> None:
    start = _since(168).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=168)
    sql, parameters = repository.timeseries_query(
        start=start, end=end, bucket_minutes=60, job_type=None, config_id=None
    )

    plan = await _plan(seeded, sql, *parameters)

    assert "job_execution_logs_started_at_idx" in _index_names(plan)
    assert "job_execution_logs" not in _seq_scanned(plan)


async def test_failed_logs_page_uses_the_status_index(seeded: Pool) -> None:
    where, parameters = repository.where_clause(LogFilters(status="failed"))
    sql = repository.LIST_LOGS.format(
        columns=repository.LOG_COLUMNS, where=where, order=repository.NEWEST_FIRST, skip=2, limit=3
    )

    plan = await _plan(seeded, sql, *parameters, 0, 100)

    assert _index_names(plan) == {"job_execution_logs_status_newest_idx"}


async def test_symbol_filter_uses_the_symbol_index(seeded: Pool) -> None:
    where, parameters = repository.where_clause(LogFilters(symbol="S7/USDT"))

    sql = repository.COUNT_LOGS.format(where=where, limit=len(parameters) + 1)

    plan = await _plan(seeded, sql, *parameters, repository.COUNT_EXACT_UP_TO + 1)

    assert _index_names(plan) == {"job_execution_logs_symbol_started_at_idx"}


async def test_newest_page_without_filters_reads_the_start_index_backwards_from_the_top(seeded: Pool) -> None:
    sql = repository.LIST_LOGS.format(
        columns=repository.LOG_COLUMNS, where="", order=repository.NEWEST_FIRST, skip=1, limit=2
    )

    plan = await _plan(seeded, sql, 0, 100)

    assert _index_names(plan) == {"job_execution_logs_started_at_idx"}


async def test_minute_counts_always_equal_the_logs(seeded: Pool) -> None:
    """Inserts, finishes, moved starts, heartbeats and deletes keep job_execution_minutes exact."""
    await seeded.execute(
        "UPDATE job_execution_logs SET status = 'running', finished_at = NULL, duration_seconds = NULL, "
        "records_collected = NULL WHERE id % 97 = 0"
    )
    await seeded.execute("UPDATE job_execution_logs SET heartbeat_at = now() WHERE status = 'running'")
    await seeded.execute(
        "UPDATE job_execution_logs SET status = 'partial', finished_at = now(), duration_seconds = 1.25, "
        "records_collected = 3 WHERE id % 194 = 0"
    )
    await seeded.execute(
        "UPDATE job_execution_logs SET started_at = started_at - interval '90 seconds' WHERE id % 7 = 0"
    )
    await seeded.execute("DELETE FROM job_execution_logs WHERE id % 5 = 0 OR started_at < now() - interval '20 days'")

    recounted = await seeded.fetch(
        "SELECT log_minute(started_at) AS minute, job_type, status, count(*) AS runs, "
        "count(duration_seconds) AS timed_runs, round(coalesce(sum(duration_seconds), 0)::numeric, 6) AS duration, "
        "coalesce(sum(records_collected), 0) AS records FROM job_execution_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    kept = await seeded.fetch(
        "SELECT minute, job_type, status, runs, timed_runs, round(duration_seconds::numeric, 6) AS duration, "
        "records_collected AS records FROM job_execution_minutes ORDER BY 1, 2, 3"
    )
    assert [tuple(row) for row in kept] == [tuple(row) for row in recounted]


@pytest.mark.parametrize("filters", [LogFilters(), LogFilters(started_from=datetime(2000, 1, 1, tzinfo=UTC))])
async def test_each_batch_of_the_csv_export_reads_an_index_range_without_sorting_every_log(
    seeded: Pool, filters: LogFilters
) -> None:
    """A batch that sorted all matching logs would make a long export quadratic."""
    _, next_sql, parameters = repository.export_queries(filters)

    plan = await _plan(seeded, next_sql, *parameters, "2099-01-01T00:00:00.000000Z", 1, repository.EXPORT_BATCH_ROWS)

    encoded = msgspec.json.encode(plan).decode()
    assert _index_names(plan) & {"job_execution_logs_started_at_idx"}
    assert '"Node Type":"Sort"' not in encoded.replace(" ", "")
    assert '"Seq Scan"' not in encoded
