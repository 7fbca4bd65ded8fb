"""Run history: routine runs older than a day are compacted, and nothing the API shows changes;
every other run keeps its full row; retention drops whole days."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from backend.monitoring import controllers
from backend.monitoring.repository import COUNT_EXACT_UP_TO, read_consecutive_failures
from backend.runs.history import DETAIL_HOURS, compact_routine_runs, drop_expired_days, keep_history
from backend.scheduling import repository as scheduling
from backend.scheduling.retention import keep_run_history
from backend.scheduling.runs import RUN_HISTORY_JOB
from tests.monitoring.conftest import ADMIN_PATH, InsertConfig, InsertLog, until_the_app_has_heard

Client = AsyncTestClient[Litestar]
NOW = datetime.now(UTC).replace(second=0, microsecond=0)

# Every 7 minutes over the last 60 hours, per config: routine successes with durations to the
# millisecond, lateness to the microsecond and a few candles each.
ROUTINE_RUNS = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at,
                                scheduled_for, finished_at, duration_seconds, records_collected, metadata)
SELECT 'collect_data_' || config.id, 'data_collection', config.id, config.symbol, config.exchange, 'success',
       'schedule', started_at, started_at - make_interval(secs => (n * 137 % 5000) / 1000000.0),
       started_at + interval '1 second', 0.013 + (n * 31 % 97) / 1000.0, n % 3 + 1,
       '{"timeframes": ["1m"], "by_timeframe": {"1m": {"retries": 0, "holes_repaired": 0}}}'
FROM data_collection_configs AS config,
     generate_series(1, 60 * 60 / 7) AS n,
     LATERAL (SELECT $1::timestamptz - make_interval(mins => n * 7) + make_interval(secs => config.id * 3 + 0.25))
         AS t(started_at)
"""
# A one-minute config: a run every minute from 30 to 26 hours ago, one candle each (its compacted
# hours store the minutes and the candle count once).
EVERY_MINUTE_RUNS = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at,
                                scheduled_for, finished_at, duration_seconds, records_collected)
SELECT 'collect_data_' || $2::bigint, 'data_collection', $2::bigint, 'XRP/USDT', 'binance', 'success', 'schedule',
       slot + make_interval(secs => (n * 7919 % 9000 + 500) / 1000000.0), slot, slot + interval '1 second',
       0.020 + (n * 17 % 100) / 1000.0, 1
FROM generate_series(1, 4 * 60) AS n,
     LATERAL (SELECT $1::timestamptz - interval '26 hours' - make_interval(mins => n)) AS t(slot)
"""

# The answers the Control Center reads, each with its query string.
FIGURES = [
    "/stats?hours=72",
    "/stats?hours=24",
    "/stats?hours=720&job_type=data_collection",
    "/status",
    "/stats/timeseries?hours=72&bucket=1h",
    "/stats/timeseries?hours=72&bucket=15m",
    "/stats/timeseries?hours=33&bucket=1m",
    "/stats/timeseries?hours=168&bucket=1d&job_type=data_collection",
    "/stats/timeseries?hours=72&bucket=1h&job_type=cleanup",
    "/stats/by-config?hours=72",
    "/stats/by-config?hours=30",
]


@pytest.fixture(autouse=True)
def fixed_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every window ends at the same minute, before and after: only the compaction differs."""
    monkeypatch.setattr(controllers, "current_minute", lambda: NOW)


@pytest.fixture
async def history(pool: Pool, insert_config: InsertConfig, insert_log: InsertLog) -> dict[str, int]:
    """Three configs' routine runs over 60 hours, and one run of each kind that keeps its full row."""
    first, second, third = [await insert_config(symbol) for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT")]
    await pool.execute(ROUTINE_RUNS, NOW)
    await pool.execute(EVERY_MINUTE_RUNS, NOW, await insert_config("XRP/USDT"))

    def ago(hours: float) -> datetime:
        return NOW - timedelta(hours=hours, seconds=17)

    kept = {
        "failed": await insert_log(
            config_id=first, status="failed", error_type="RequestTimeout", error_message="timed out", started_at=ago(40)
        ),
        "partial": await insert_log(
            config_id=second,
            status="partial",
            error_type="InvalidCandle",
            error_message="1m: 1 candle",
            started_at=ago(39),
        ),
        "manual": await insert_log(config_id=first, trigger="manual", duration_seconds=1.5, started_at=ago(38)),
        "repaired": await insert_log(
            config_id=second,
            started_at=ago(37),
            scheduled_for=ago(37) - timedelta(milliseconds=3),
            metadata={"by_timeframe": {"1m": {"holes_repaired": 2, "retries": 0}}},
        ),
        "retried": await insert_log(
            config_id=first,
            started_at=ago(36),
            scheduled_for=ago(36),
            metadata={"by_timeframe": {"1m": {"holes_repaired": 0, "retries": 1}}},
        ),
        "missed": await insert_log(config_id=second, started_at=ago(35), scheduled_for=ago(35), missed_slots=3),
        "cleanup": await insert_log(
            job_name="log_retention",
            job_type="cleanup",
            trigger="system",
            symbol=None,
            exchange=None,
            started_at=ago(34),
        ),
        "running": await insert_log(config_id=third, status="running", started_at=NOW - timedelta(seconds=20)),
    }
    # the third config has failed ever since its routine runs of two days ago: its newest success stays
    await pool.execute("DELETE FROM job_execution_logs WHERE config_id = $1 AND started_at > $2", third, ago(48))
    for hours in (47, 30, 20, 5):
        await insert_log(config_id=third, status="failed", error_type="ExchangeError", started_at=ago(hours))
    return kept


async def _figures(client: Client, headers: dict[str, str]) -> dict[str, Any]:
    answers = {}
    for path in FIGURES:
        response = await client.get(f"{ADMIN_PATH}{path}", headers=headers)
        assert response.status_code == 200, response.text
        answers[path] = response.json()
    for exchange in answers["/status"].get("exchanges", []):
        exchange.pop("behind_seconds")  # how long the oldest due slot has waited: it grows with the clock
    return answers


async def _compact(pool: Pool) -> int:
    return await compact_routine_runs(pool, before=NOW - timedelta(hours=DETAIL_HOURS))


async def test_stats_status_timeseries_and_by_config_are_the_same_after_compaction(
    app: Litestar, pool: Pool, client: Client, viewer_headers: dict[str, str], history: dict[str, int]
) -> None:
    logs_before = await pool.fetchval("SELECT count(*) FROM job_execution_logs")
    before = await _figures(client, viewer_headers)

    moved = await _compact(pool)
    await until_the_app_has_heard(app, pool)  # answers computed after the change, not kept from before

    assert moved > 700
    assert await pool.fetchval("SELECT count(*) FROM compacted_runs WHERE minutes IS NULL AND records IS NULL") >= 3
    assert await pool.fetchval("SELECT count(*) FROM compacted_runs WHERE minutes IS NOT NULL AND records IS NOT NULL")
    assert await pool.fetchval("SELECT count(*) FROM job_execution_logs") == logs_before - moved
    assert await _figures(client, viewer_headers) == before
    assert before["/stats?hours=72"]["total_executions"] == logs_before


async def test_the_counts_per_minute_still_equal_a_recount_from_logs_and_compacted_runs(
    pool: Pool, history: dict[str, int]
) -> None:
    await _compact(pool)
    minutes = (
        "SELECT minute, job_type, status, runs, timed_runs, round(duration_seconds::numeric, 6), records_collected "
        "FROM job_execution_minutes ORDER BY 1, 2, 3"
    )
    kept = await pool.fetch(minutes)

    await pool.execute("SELECT recount_runs_per_minute()")

    assert [tuple(row) for row in await pool.fetch(minutes)] == [tuple(row) for row in kept]


async def test_every_run_of_the_last_day_is_still_listed_in_full(
    app: Litestar, pool: Pool, client: Client, viewer_headers: dict[str, str], history: dict[str, int]
) -> None:
    day_ago = (NOW - timedelta(hours=DETAIL_HOURS)).isoformat().replace("+00:00", "Z")
    url = f"{ADMIN_PATH}/execution-logs?start_date={day_ago}&limit=1000"
    before = (await client.get(url, headers=viewer_headers)).json()

    await _compact(pool)
    await until_the_app_has_heard(app, pool)

    assert len(before) > 400
    assert (await client.get(url, headers=viewer_headers)).json() == before


async def test_runs_that_failed_were_partial_manual_repaired_retried_or_late_keep_every_detail(
    pool: Pool, client: Client, viewer_headers: dict[str, str], history: dict[str, int]
) -> None:
    before = {
        kind: (await client.get(f"{ADMIN_PATH}/execution-logs/{run_id}", headers=viewer_headers)).json()
        for kind, run_id in history.items()
    }
    routine = await pool.fetchval(
        "SELECT id FROM job_execution_logs WHERE started_at < $1 AND metadata ? 'timeframes' ORDER BY id LIMIT 1",
        NOW - timedelta(hours=30),
    )

    await _compact(pool)

    for kind, run_id in history.items():
        response = await client.get(f"{ADMIN_PATH}/execution-logs/{run_id}", headers=viewer_headers)
        assert response.json() == before[kind], kind
    assert (await client.get(f"{ADMIN_PATH}/execution-logs/{routine}", headers=viewer_headers)).status_code == 404


async def test_the_newest_success_of_a_failing_config_stays_so_failure_streaks_are_the_same(
    pool: Pool, history: dict[str, int]
) -> None:
    streaks = await read_consecutive_failures(pool, up_to=10)

    await _compact(pool)

    assert await read_consecutive_failures(pool, up_to=10) == streaks
    assert [streak.failures for streak in streaks] == [0, 0, 4, 0]


async def test_a_config_deleted_after_compaction_leaves_its_runs_counted_as_its_logs_are(
    pool: Pool, client: Client, admin_headers: dict[str, str], history: dict[str, int]
) -> None:
    await _compact(pool)
    first = await pool.fetchval("SELECT min(id) FROM data_collection_configs")
    chart = f"{ADMIN_PATH}/stats/timeseries?hours=72&bucket=1h"
    before = (await client.get(chart, headers=admin_headers)).json()

    deleted = await client.delete(f"{ADMIN_PATH}/configs/{first}", headers=admin_headers)

    assert deleted.status_code == 204
    assert (await client.get(chart, headers=admin_headers)).json()["points"] == before["points"]
    assert await pool.fetchval("SELECT count(*) FROM compacted_runs WHERE config_id = $1", first) == 0
    assert await pool.fetchval("SELECT count(*) FROM compacted_runs WHERE config_id IS NULL") > 0


async def test_retention_drops_whole_days_with_their_counts(
    app: Litestar, pool: Pool, client: Client, viewer_headers: dict[str, str], history: dict[str, int]
) -> None:
    await _compact(pool)
    await until_the_app_has_heard(app, pool)
    days = [row["day"] for row in await pool.fetch("SELECT day FROM compacted_run_partitions ORDER BY day")]
    oldest_day_start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    in_oldest_day = await pool.fetchval(
        "SELECT coalesce(sum(cardinality(lateness_us)), 0) FROM compacted_runs WHERE hour < $1",
        oldest_day_start + timedelta(days=1),
    )
    stats = f"{ADMIN_PATH}/stats?hours=720"
    total_before = (await client.get(stats, headers=viewer_headers)).json()["total_executions"]

    dropped = await drop_expired_days(pool, before=days[1])
    await until_the_app_has_heard(app, pool)

    assert dropped == [f"compacted_runs_{days[0]:%Y_%m_%d}"]
    assert [row["day"] for row in await pool.fetch("SELECT day FROM compacted_run_partitions ORDER BY day")] == days[1:]
    assert await pool.fetchval("SELECT to_regclass($1)", dropped[0]) is None
    assert in_oldest_day > 0
    total_after = (await client.get(stats, headers=viewer_headers)).json()["total_executions"]
    assert total_after == total_before - in_oldest_day
    minutes = "SELECT minute, job_type, status, runs, records_collected FROM job_execution_minutes ORDER BY 1, 2, 3"
    kept = await pool.fetch(minutes)
    await pool.execute("SELECT recount_runs_per_minute()")
    assert [tuple(row) for row in await pool.fetch(minutes)] == [tuple(row) for row in kept]


async def test_the_hourly_job_compacts_then_drops_and_logs_what_it_did(pool: Pool, history: dict[str, int]) -> None:
    logs_before = await pool.fetchval("SELECT count(*) FROM job_execution_logs")

    run_id = await keep_run_history(pool, retention_days=1)

    run = await pool.fetchrow("SELECT * FROM job_execution_logs WHERE id = $1", run_id)
    assert (run["job_name"], run["job_type"], run["trigger"], run["status"]) == (
        RUN_HISTORY_JOB,
        "cleanup",
        "system",
        "success",
    )
    metadata = run["metadata"]
    assert metadata["compacted_runs"] > 500
    assert metadata["compacted_runs"] == logs_before + 1 - await pool.fetchval(
        "SELECT count(*) FROM job_execution_logs"
    )
    assert metadata["dropped_partitions"]
    assert await pool.fetchval("SELECT count(*) FROM compacted_run_partitions") <= 2


async def test_a_second_pass_moves_nothing_and_changes_nothing(pool: Pool, history: dict[str, int]) -> None:
    first = await keep_history(pool, now=NOW, retention_days=30)
    rows = await pool.fetchval("SELECT count(*) FROM compacted_runs")

    second = await keep_history(pool, now=NOW, retention_days=30)

    assert first.compacted_runs > 0
    assert (second.compacted_runs, second.dropped_partitions) == (0, [])
    assert await pool.fetchval("SELECT count(*) FROM compacted_runs") == rows


async def test_one_of_many_processes_runs_it_each_hour(pool: Pool) -> None:
    every = timedelta(hours=1)
    claims = await asyncio.gather(
        *(scheduling.claim_system_job(pool, name=RUN_HISTORY_JOB, every=every) for _ in range(8))
    )

    assert claims.count(True) == 1
    next_run = await pool.fetchval("SELECT next_run_at FROM system_jobs WHERE name = $1", RUN_HISTORY_JOB)
    assert next_run == await pool.fetchval("SELECT date_trunc('hour', now(), 'UTC') + interval '1 hour'")


async def test_the_total_count_is_exact_up_to_ten_thousand_and_said_to_be_an_estimate_beyond(
    pool: Pool, client: Client, viewer_headers: dict[str, str]
) -> None:
    newest = datetime.now(UTC).replace(microsecond=0)
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at, finished_at, duration_seconds) "
        "SELECT 'collect_data_0', 'data_collection', CASE WHEN n % 2 = 0 THEN 'failed' ELSE 'success' END, "
        "$1::timestamptz - n * interval '1 second', $1, 1 FROM generate_series(1, $2) AS n",
        newest,
        2 * COUNT_EXACT_UP_TO + 10,
    )
    await pool.execute("ANALYZE job_execution_logs")
    url = f"{ADMIN_PATH}/execution-logs?limit=5&status=failed"
    since = (newest - timedelta(seconds=1000)).isoformat().replace("+00:00", "Z")

    few = await client.get(f"{url}&start_date={since}", headers=viewer_headers)
    many = await client.get(url, headers=viewer_headers)

    assert (few.headers["X-Total-Count"], few.headers["X-Total-Count-Exact"]) == ("500", "true")
    assert many.headers["X-Total-Count-Exact"] == "false"
    assert int(many.headers["X-Total-Count"]) > COUNT_EXACT_UP_TO
    assert len(many.json()) == 5
