"""GET /metrics after known runs against the fake Binance: every value equals what SQL says of the
same runs, series and requests (read with Prometheus' own parser)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection.collector import Collector
from backend.collection.exchange_states import ExchangeActivity
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import NOW, Clock, create_config
from tests.collection.fake_binance import FakeBinance
from tests.collection.fake_exchange import high_below_low
from tests.monitoring.test_metrics import Samples, parse, value

RUNS_BY_STATUS = """
SELECT status, count(*) AS runs, sum(records_collected) AS records FROM job_execution_logs
WHERE job_type = 'data_collection' GROUP BY status
"""
REJECTED_IN_LOGS = """
SELECT coalesce(sum((tf.value ->> 'rejected_candles')::int), 0)
FROM job_execution_logs, jsonb_each(metadata -> 'by_timeframe') AS tf
"""
NEWEST_CLOSE = """
SELECT extract(epoch FROM now() - (to_timestamp(max(c.last_minute) * 60.0) + interval '1 hour'))
FROM candle_counts AS c JOIN candle_series AS s ON s.id = c.series_id WHERE s.symbol = $1
"""


@pytest.fixture
async def activity(pool: Pool) -> AsyncIterator[ExchangeActivity]:
    recorder = ExchangeActivity(pool, process="web.1")
    yield recorder
    await recorder.close()


@pytest.fixture
async def recording_collector(
    pool: Pool, collection_settings: Settings, clock: Clock, activity: ExchangeActivity
) -> AsyncIterator[Collector]:
    clients = ExchangeClients(collection_settings.exchange_overrides, activity=activity)
    yield Collector(pool=pool, exchanges=clients, settings=collection_settings, clock=clock)
    await clients.close()


async def _scrape(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    return parse(response.text)


async def test_metrics_equal_sql_after_runs_that_succeed_fail_and_are_throttled(
    pool: Pool,
    recording_collector: Collector,
    activity: ExchangeActivity,
    fake: FakeBinance,
    clock: Clock,
    client: AsyncTestClient[Litestar],
    viewer_headers: dict[str, str],
) -> None:
    btc = await create_config(pool, timeframes=["1h"])
    eth = await create_config(pool, symbol="ETH/USDT", timeframes=["1h"])
    await recording_collector.collect_now(btc)  # success: a week of candles
    fake.fail_candles(500, times=10)
    await recording_collector.collect_now(eth)  # failed: every answer an error
    fake.clear_failures()
    clock.advance(timedelta(hours=3))
    fake.fail_candles(429, retry_after=0)
    corrupted = to_ms(NOW.replace(minute=0, second=0) + timedelta(hours=1))
    fake.corrupt_candles(high_below_low, at_ms=[corrupted], times=10)
    await recording_collector.collect_now(btc)  # throttled once, then partial: one candle keeps breaking the rules
    await activity.flush()  # as the scheduler's heartbeat does

    samples = await _scrape(client, viewer_headers)

    by_status = {row["status"]: row for row in await pool.fetch(RUNS_BY_STATUS)}
    assert set(by_status) == {"success", "failed", "partial"}
    for status, row in by_status.items():
        labels = {"job_type": "data_collection", "exchange": "binance", "trigger": "manual", "status": status}
        assert value(samples, "altar_runs_total", **labels) == row["runs"]
    stored = sum(row["records"] for row in by_status.values())
    assert value(samples, "altar_candles_stored_total", exchange="binance") == stored
    assert stored == await pool.fetchval("SELECT count(*) FROM candle_data")
    assert (
        value(samples, "altar_candles_rejected_total", exchange="binance") == await pool.fetchval(REJECTED_IN_LOGS) == 1
    )
    assert value(samples, "altar_run_duration_seconds_count", job_type="data_collection", exchange="binance") == 3
    duration_sum = await pool.fetchval("SELECT sum(duration_seconds) FROM job_execution_logs")
    assert value(samples, "altar_run_duration_seconds_sum", job_type="data_collection", exchange="binance") == (
        pytest.approx(duration_sum)
    )
    answers = fake.market_requests + fake.time_requests + len(fake.requests)
    assert value(samples, "altar_exchange_requests_total", exchange="binance") == answers
    assert value(samples, "altar_exchange_errors_total", exchange="binance") == 3 + 1  # 500s (with retries), the 429
    assert value(samples, "altar_exchange_rate_limits_total", exchange="binance") == 1
    lag = value(samples, "altar_series_lag_seconds", exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert lag == pytest.approx(float(await pool.fetchval(NEWEST_CLOSE, "BTC/USDT")), abs=5)
    eth_labels = {"exchange": "binance", "symbol": "ETH/USDT", "timeframe": "1h"}
    # created just now: given the time to catch up, so not listed as stale
    assert ("altar_series_stale", tuple(sorted(eth_labels.items()))) not in samples
    failures = value(
        samples, "altar_config_consecutive_failures", config_id=str(eth), exchange="binance", symbol="ETH/USDT"
    )
    assert failures == 1
