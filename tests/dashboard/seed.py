"""Data for the browser tests and the screenshots: run history written as the scheduler would have,
and stored candles the exchange corrected afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.collection.fake_exchange import value
from tests.dashboard.conftest import ADMIN_PATH, Served

# One scheduled run of each config every `every` minutes over the last `days` days, with the
# lateness, durations and outcomes a real week has: 1 in 20 failed (every timeframe timed out),
# 1 in 33 partial (its first timeframe timed out), their messages as the collector writes them.
SEED_HISTORY = """
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, scheduled_for, finished_at,
     duration_seconds, records_collected, error_message, error_type, error_cause, metadata)
SELECT 'collect_data_' || config.id, 'data_collection', config.id, config.symbol, config.exchange, run.status,
       'schedule', run.slot + run.lateness, run.slot,
       run.slot + run.lateness + run.duration * interval '1 second',
       run.duration,
       CASE WHEN run.status = 'failed' THEN 0 ELSE 20 + (run.n * 37 % 140) END,
       (SELECT string_agg(timeframe || ': binance GET https://api.binance.com/api/v3/klines?interval=' || timeframe
                          || '&limit=1000&symbol=' || replace(config.symbol, '/', '') || '&startTime='
                          || (extract(epoch FROM run.slot)::bigint * 1000 - 3600000), '; ')
        FROM unnest(CASE run.status WHEN 'failed' THEN config.timeframes WHEN 'partial' THEN config.timeframes[1:1]
                    END) AS timeframe),
       CASE WHEN run.status <> 'success' THEN 'RequestTimeout' END,
       CASE run.status WHEN 'failed' THEN 'binance did not answer in time'
                       WHEN 'partial' THEN config.timeframes[1] || ': binance did not answer in time' END,
       jsonb_build_object('timeframes_collected', cardinality(config.timeframes), 'timeframes_failed', 0,
                          'timeframes', to_jsonb(config.timeframes))
FROM data_collection_configs AS config
CROSS JOIN LATERAL (
    SELECT n,
           date_trunc('minute', now()) - n * $3 * interval '1 minute' AS slot,
           (20 + (n * 7919 + config.id * 13) % 900) * interval '1 millisecond' AS lateness,
           round((0.4 + ((n * 7919 + config.id) % 500) / 100.0 * (1 + (n % 24) / 12.0))::numeric, 2)::float AS duration,
           CASE WHEN (n + config.id) % 20 = 0 THEN 'failed' WHEN (n + config.id) % 33 = 0 THEN 'partial'
                ELSE 'success' END AS status
    FROM generate_series(1, $2 * 24 * 60 / $3) AS n
) AS run
WHERE config.id = ANY($1::bigint[])
"""
STORED_OPEN_TIMES = "SELECT open_time FROM candles WHERE symbol = $1 AND timeframe = $2 ORDER BY open_time"
# configs that have not run yet, or whose run is still going
NOT_DONE = """
SELECT count(*) FROM data_collection_configs AS config
WHERE config.id = ANY($1::bigint[])
  AND (config.last_run_at IS NULL
       OR EXISTS (SELECT 1 FROM job_execution_logs AS log WHERE log.config_id = config.id AND log.status = 'running'))
"""


async def seed_history(database_url: str, config_ids: list[int], *, days: int = 7, every_minutes: int = 30) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(SEED_HISTORY, config_ids, days, every_minutes)
    finally:
        await conn.close()


async def wait_for_runs(database_url: str, config_ids: list[int]) -> None:
    """Wait until each config has run and none is running (enabled configs run when created)."""
    conn = await asyncpg.connect(database_url)
    try:
        while await conn.fetchval(NOT_DONE, config_ids):
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def fetch_one(database_url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def correct_stored_candles(served: Served, symbol: str, timeframe: str, count: int) -> dict[str, Any]:
    """The fake exchange changes the volume of ``count`` stored candles (from the 11th oldest on), and an
    admin compares the range around them with it again (``/reverify``): its answer."""
    conn = await asyncpg.connect(served.database_url)
    try:
        stored = [row["open_time"] for row in await conn.fetch(STORED_OPEN_TIMES, symbol, timeframe)]
    finally:
        await conn.close()
    changed = stored[10 : 10 + count]
    served.fake.corrupt_candles(value("volume", 7.0), at_ms=[int(t.timestamp() * 1000) for t in changed])
    body = {"symbol": symbol, "timeframe": timeframe, "start": stored[5].isoformat(), "end": stored[-1].isoformat()}
    async with served.api(await served.token()) as client:
        response = await client.post(f"{ADMIN_PATH}/reverify", json=body)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer
