"""Runs that begin together are begun together: one statement, and each run still gets its own
config and stored series, or the answer that it cannot begin, with nothing written for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from backend.collection import repository
from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.runs import repository as runs
from backend.settings import Settings
from tests.collection.conftest import Clock, NewConfig, RecordingPool

HOUR_START = datetime(2026, 1, 5, 10, tzinfo=UTC)


async def _configs(pool: Pool, count: int) -> list[int]:
    rows = await pool.fetch(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes) "
        "SELECT 'B' || n || '/USDT', 'binance', '{1m,1h}', 10 FROM generate_series(1, $1) AS n RETURNING id",
        count,
    )
    return [row["id"] for row in rows]


async def _store_hours(pool: Pool, symbol: str, hours: int) -> None:
    rows = [(HOUR_START + timedelta(hours=n), 1.0, 2.0, 0.5, 1.5, 10.0) for n in range(hours)]
    await store_candles(pool, exchange="binance", symbol=symbol, timeframe="1h", rows=rows)


async def test_runs_begun_together_each_get_their_own_config_and_stored_series(pool: Pool) -> None:
    config_ids = await _configs(pool, 30)
    for n in range(1, 31, 3):  # every third config has an hourly series of n candles stored
        await _store_hours(pool, f"B{n}/USDT", n)
    run_ids = [await runs.start_run(pool, config_id=config_id, trigger="manual") for config_id in config_ids]

    begun = await repository.begin_runs_reading_series(pool, run_ids)

    for n, answer in enumerate(begun, start=1):
        assert not isinstance(answer, str)
        config, stored = answer
        assert config.symbol == f"B{n}/USDT"
        if n % 3 == 1:
            assert list(stored) == ["1h"]
            assert stored["1h"].symbol == config.symbol
            assert (stored["1h"].first, stored["1h"].newest) == (HOUR_START, HOUR_START + timedelta(hours=n - 1))
        else:
            assert stored == {}
    started = await pool.fetchval(  # a queued run has no heartbeat until it begins
        "SELECT count(*) FROM job_execution_logs WHERE id = ANY($1::bigint[]) AND heartbeat_at IS NOT NULL",
        run_ids,
    )
    assert started == 30
    assert await pool.fetchval("SELECT count(*) FROM data_collection_configs WHERE last_run_at IS NOT NULL") == 30


async def test_a_run_that_cannot_begin_among_others_is_answered_alone_and_nothing_of_it_is_written(
    pool: Pool,
) -> None:
    ended, deleted, disabled, manual_of_disabled, good = await _configs(pool, 5)
    run_ids = [await runs.start_run(pool, config_id=config_id, trigger="manual") for config_id in (ended, deleted)]
    run_ids += [
        await runs.start_run(pool, config_id=disabled, trigger="schedule", scheduled_for=datetime.now(UTC)),
        await runs.start_run(pool, config_id=manual_of_disabled, trigger="manual"),
        await runs.start_run(pool, config_id=good, trigger="manual"),
    ]
    await runs.complete_run(pool, run_id=run_ids[0], status="success", duration_seconds=0, records_collected=0)
    await pool.execute("DELETE FROM data_collection_configs WHERE id = $1", deleted)
    await pool.execute(
        "UPDATE data_collection_configs SET enabled = false WHERE id = ANY($1::bigint[])",
        [disabled, manual_of_disabled],
    )

    begun = await repository.begin_runs_reading_series(pool, run_ids)

    assert begun[:3] == ["not running", "no config", "no config"]
    assert [answer[0].id for answer in begun[3:] if not isinstance(answer, str)] == [manual_of_disabled, good]
    begun_logs = await pool.fetch(  # a queued run has no heartbeat until it begins
        "SELECT id FROM job_execution_logs WHERE id = ANY($1::bigint[]) AND heartbeat_at IS NOT NULL ORDER BY id",
        run_ids[1:],
    )
    assert [row["id"] for row in begun_logs] == run_ids[3:]
    touched = await pool.fetch("SELECT id FROM data_collection_configs WHERE last_run_at IS NOT NULL ORDER BY id")
    assert [row["id"] for row in touched] == [manual_of_disabled, good]


async def test_runs_starting_at_once_send_one_statement_to_begin(
    recording_pool: RecordingPool,
    exchanges: ExchangeClients,
    collection_settings: Settings,
    new_config: NewConfig,
    clock: Clock,
    pool: Pool,
) -> None:
    config_ids = [await new_config(symbol=symbol) for symbol in ("BTC/USDT", "ETH/USDT")]
    run_ids = [await runs.start_run(pool, config_id=config_id, trigger="manual") for config_id in config_ids]
    collector = Collector(pool=recording_pool.pool, exchanges=exchanges, settings=collection_settings, clock=clock)

    outcomes = await asyncio.gather(*(collector.execute_run(run_id) for run_id in run_ids))

    assert [outcome.status if outcome else None for outcome in outcomes] == ["success", "success"]
    assert recording_pool.sent.count(repository.BEGIN_RUNS_READING_SERIES) == 1
