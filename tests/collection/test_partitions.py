"""Candle partitions: created ahead by the daily job, dropped whole by per-timeframe retention."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from backend.collection.collector import Collector
from backend.collection.partitions import keep_partitions
from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.scheduling.retention import retain_logs
from tests.collection.conftest import Clock, assert_summary_equals_recount, create_config, stored_open_times

NOW = datetime(2025, 3, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
async def no_time_partitions(pool: Pool) -> None:
    """Partitions outlive the emptied tables of earlier tests: start without any."""
    for row in await pool.fetch(
        "SELECT format('DROP TABLE %I', partition_name) AS drop FROM candle_partitions "
        "UNION ALL SELECT format('DROP TABLE %I', partition_name) FROM candle_segment_partitions"
    ):
        await pool.execute(row["drop"])


async def _store_days(pool: Pool, timeframe: str, days: list[datetime]) -> None:
    for day in days:
        rows = [(day + hour * timedelta(hours=1), 1.0, 2.0, 0.5, 1.5, 3.0) for hour in range(3)]
        await store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe=timeframe, rows=rows)


async def _partitions(pool: Pool, timeframe: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT partition_name FROM candle_partitions WHERE timeframe = $1 ORDER BY period_start", timeframe
    )
    return [row["partition_name"] for row in rows]


async def test_the_daily_upkeep_creates_the_current_and_next_partition_of_each_timeframe_in_use(pool: Pool) -> None:
    await _store_days(pool, "1m", [datetime(2025, 1, 10, tzinfo=UTC)])
    await _store_days(pool, "1h", [datetime(2025, 1, 10, tzinfo=UTC)])

    upkeep = await keep_partitions(pool, retention_days={}, now=NOW)

    assert upkeep.created == ["candle_data_1m_2025_03", "candle_data_1m_2025_04"]
    assert await _partitions(pool, "1m") == [
        "candle_data_1m_2025_01",
        "candle_data_1m_2025_03",
        "candle_data_1m_2025_04",
    ]
    assert await _partitions(pool, "1h") == ["candle_data_1h_2025"]
    assert upkeep.dropped == []


async def test_retention_drops_whole_expired_partitions_and_keeps_the_rest(pool: Pool) -> None:
    days = [datetime(2025, 1, 20, tzinfo=UTC), datetime(2025, 2, 20, tzinfo=UTC), datetime(2025, 3, 10, tzinfo=UTC)]
    await _store_days(pool, "1m", days)

    upkeep = await keep_partitions(pool, retention_days={"1m": 30}, now=NOW)

    assert upkeep.dropped == ["candle_data_1m_2025_01"]
    assert await pool.fetchval("SELECT to_regclass('candle_data_1m_2025_01')") is None
    remaining = await pool.fetch("SELECT DISTINCT date_trunc('day', open_time) AS day FROM candles ORDER BY day")
    assert [row["day"] for row in remaining] == days[1:]


async def test_the_summary_loses_exactly_the_dropped_candles(pool: Pool) -> None:
    await _store_days(pool, "1m", [datetime(2025, 1, 31, 22, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)])
    series_id = await pool.fetchval("SELECT id FROM candle_series WHERE timeframe = '1m'")

    await keep_partitions(pool, retention_days={"1m": 30}, now=NOW)

    await assert_summary_equals_recount(pool, series_id, 1)
    assert await pool.fetchval("SELECT sum(candles) FROM candle_counts") == 4  # one hour of Feb 1st, three of Feb 3rd


async def test_retention_of_one_timeframe_leaves_the_others_alone(pool: Pool) -> None:
    old = [datetime(2024, 6, 1, tzinfo=UTC)]
    await _store_days(pool, "1m", old)
    await _store_days(pool, "5m", old)

    upkeep = await keep_partitions(pool, retention_days={"1m": 30}, now=NOW)

    assert upkeep.dropped == ["candle_data_1m_2024_06"]
    assert await pool.fetchval("SELECT count(*) FROM candles WHERE timeframe = '5m'") == 3


async def test_without_retention_settings_nothing_is_dropped(pool: Pool) -> None:
    await _store_days(pool, "1m", [datetime(2020, 1, 1, tzinfo=UTC)])

    run_id = await retain_logs(pool, retention_days=30)

    metadata = await pool.fetchval("SELECT metadata FROM job_execution_logs WHERE id = $1", run_id)
    assert metadata["dropped_partitions"] == []
    assert await pool.fetchval("SELECT count(*) FROM candles") == 3


async def test_the_daily_job_logs_the_partitions_it_dropped(pool: Pool) -> None:
    await _store_days(pool, "1m", [datetime(2020, 1, 1, tzinfo=UTC)])

    run_id = await retain_logs(pool, retention_days=30, candle_retention_days={"1m": 30})

    metadata = await pool.fetchval("SELECT metadata FROM job_execution_logs WHERE id = $1", run_id)
    assert metadata["dropped_partitions"] == ["candle_data_1m_2020_01"]
    assert await pool.fetchval("SELECT count(*) FROM candles") == 0


async def test_a_run_never_fetches_what_retention_would_drop(pool: Pool, collector: Collector, clock: Clock) -> None:
    collector.settings = dataclasses.replace(collector.settings, candle_retention_days={"1h": 2})

    outcome = await collector.collect_now(await create_config(pool, backfill_days=7))

    times = await stored_open_times(pool)
    assert outcome is not None
    assert times[0] == clock.now.replace(minute=0, second=0) - 2 * DAY
    assert outcome.records_collected == 48


async def _first_stores_at_once(pool: Pool, day: datetime, markets: int) -> None:
    """``markets`` new series of each timeframe store their first candles at ``day`` at once."""

    async def first_store(number: int, timeframe: str) -> None:
        rows = [(day, 1.0, 2.0, 0.5, 1.5, 3.0)]
        await store_candles(pool, exchange="binance", symbol=f"C{number}/USDT", timeframe=timeframe, rows=rows)

    await asyncio.gather(*(first_store(n, tf) for n in range(markets) for tf in ("1m", "1h")))


async def test_thirty_first_runs_at_once_on_a_fresh_database_create_each_partition_once(pool: Pool) -> None:
    await _first_stores_at_once(pool, datetime(2026, 1, 1, tzinfo=UTC), 30)

    assert await _partitions(pool, "1m") == ["candle_data_1m_2026_01"]
    assert await _partitions(pool, "1h") == ["candle_data_1h_2026"]
    assert await pool.fetchval("SELECT count(*) FROM candles") == 60


async def test_thirty_first_runs_at_once_in_a_new_year_and_month_create_each_partition_once(pool: Pool) -> None:
    await _first_stores_at_once(pool, datetime(2026, 12, 31, 23, tzinfo=UTC), 1)

    await _first_stores_at_once(pool, datetime(2027, 1, 1, tzinfo=UTC), 30)

    assert await _partitions(pool, "1m") == ["candle_data_1m_2026_12", "candle_data_1m_2027_01"]
    assert await _partitions(pool, "1h") == ["candle_data_1h_2026", "candle_data_1h_2027"]
