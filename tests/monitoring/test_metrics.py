"""GET /metrics: who may read it, and what it says, read with Prometheus' own parser.

The whole-system values come from PostgreSQL (any process answers the same); HTTP and pool values
are this process's, labelled with it.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from backend.app import create_app
from backend.collection.exchange_states import ExchangeActivity
from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.process import process_identity
from backend.runs import repository as runs
from backend.settings import Settings
from tests.monitoring.conftest import ADMIN_PATH

Client = AsyncTestClient[Litestar]
METRICS_TOKEN = "scrape-0123456789-abcdefghijklmnop"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels (the parser fails on malformed text)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, metrics_token=METRICS_TOKEN)


async def _metrics(client: Client, headers: dict[str, str]) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    return parse(response.text)


async def _config(pool: Pool, *, symbol: str = "BTC/USDT", exchange: str = "binance", enabled: bool = True) -> int:
    config_id: int = await pool.fetchval(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled, "
        "schedule_anchor_at) VALUES ($1, $2, '{1h}', 10, $3, now() - interval '1 day') RETURNING id",
        symbol,
        exchange,
        enabled,
    )
    return config_id


async def test_no_token_is_401(client: Client) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 401


async def test_a_token_that_is_neither_is_401(client: Client) -> None:
    response = await client.get("/metrics", headers={"Authorization": "Bearer not-the-scrape-token"})

    assert response.status_code == 401


async def test_a_viewer_reads_the_metrics(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.get("/metrics", headers=viewer_headers)

    assert response.status_code == 200


async def test_the_scrape_token_reads_the_metrics(client: Client) -> None:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert response.status_code == 200


async def test_the_scrape_token_reads_nothing_else(client: Client) -> None:
    response = await client.get(f"{ADMIN_PATH}/status", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert response.status_code == 401


async def test_without_a_scrape_token_set_only_users_read(pool: Pool, settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, metrics_token=None))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert response.status_code == 401


async def test_metrics_are_not_in_the_openapi_document(client: Client) -> None:
    document = (await client.get("/schema/openapi.json")).json()

    assert "/metrics" not in document["paths"]


async def test_run_counters_equal_the_run_totals(client: Client, viewer_headers: dict[str, str], pool: Pool) -> None:
    config_id = await _config(pool)
    for status, records in (("success", 60), ("success", 40), ("failed", 0)):
        run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
        await runs.begin_run(pool, run_id=run_id)
        await runs.complete_run(pool, run_id=run_id, status=status, duration_seconds=2.0, records_collected=records)

    samples = await _metrics(client, viewer_headers)

    labels = {"job_type": "data_collection", "exchange": "binance", "trigger": "manual"}
    assert value(samples, "altar_runs_total", **labels, status="success") == 2
    assert value(samples, "altar_runs_total", **labels, status="failed") == 1
    assert value(samples, "altar_candles_stored_total", exchange="binance") == 100
    assert value(samples, "altar_run_duration_seconds_count", job_type="data_collection", exchange="binance") == 3
    assert value(samples, "altar_run_duration_seconds_sum", job_type="data_collection", exchange="binance") == 6.0
    assert (
        value(samples, "altar_run_duration_seconds_bucket", job_type="data_collection", exchange="binance", le="1.0")
        == 0
    )
    assert (
        value(samples, "altar_run_duration_seconds_bucket", job_type="data_collection", exchange="binance", le="2.5")
        == 3
    )


async def test_counters_do_not_drop_when_logs_are_deleted(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    config_id = await _config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
    await runs.complete_run(pool, run_id=run_id, status="success", duration_seconds=1.0, records_collected=5)
    before = await _metrics(client, viewer_headers)

    await pool.execute("DELETE FROM job_execution_logs")
    after = await _metrics(client, viewer_headers)

    key = {"job_type": "data_collection", "exchange": "binance", "trigger": "manual", "status": "success"}
    assert value(before, "altar_runs_total", **key) == value(after, "altar_runs_total", **key) == 1
    assert value(after, "altar_candles_stored_total", exchange="binance") == 5


async def test_freshness_gauges_follow_each_series(client: Client, viewer_headers: dict[str, str], pool: Pool) -> None:
    await _config(pool)
    await _config(pool, symbol="ETH/USDT")
    newest = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await store_candles(
        pool, exchange="binance", symbol="BTC/USDT", timeframe="1h", rows=[(newest, 1.0, 2.0, 0.5, 1.5, 3.0)]
    )

    samples = await _metrics(client, viewer_headers)

    btc = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}
    eth = {**btc, "symbol": "ETH/USDT"}
    assert 0 <= value(samples, "altar_series_lag_seconds", **btc) < 3600
    assert ("altar_series_lag_seconds", tuple(sorted(eth.items()))) not in samples  # nothing stored
    assert value(samples, "altar_series_stale", **eth) == 1
    assert ("altar_series_stale", tuple(sorted(btc.items()))) not in samples  # not stale: left out
    assert (value(samples, "altar_series"), value(samples, "altar_stale_series")) == (2, 1)


async def test_exchange_state_and_request_counters_come_from_every_process(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _config(pool, exchange="okx")
    worker = ExchangeActivity(pool, process="worker.1")
    worker.count("binance", requests=7, errors=2, rate_limits=1)
    await worker.flush()
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO exchange_pauses VALUES ('binance', 'worker.1', 'banned', $1, $2, 'banned (418)')",
        now - timedelta(minutes=3),
        now + timedelta(minutes=2),
    )

    samples = await _metrics(client, viewer_headers)

    assert value(samples, "altar_exchange_state", exchange="binance", state="banned") == 1
    assert value(samples, "altar_exchange_state", exchange="binance", state="ok") == 0
    assert value(samples, "altar_exchange_state", exchange="okx", state="ok") == 1
    since = value(samples, "altar_exchange_pause_since_timestamp_seconds", exchange="binance")
    assert since == pytest.approx((now - timedelta(minutes=3)).timestamp())
    assert value(samples, "altar_exchange_requests_total", exchange="binance") == 7
    assert value(samples, "altar_exchange_errors_total", exchange="binance") == 2
    assert value(samples, "altar_exchange_rate_limits_total", exchange="binance") == 1
    assert value(samples, "altar_exchange_bans_total", exchange="binance") == 0


async def test_scheduler_heartbeat_age_and_schedulers_alive(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    await pool.execute(
        "INSERT INTO scheduler_heartbeats (scheduler_id, backend, heartbeat_at, expires_at) VALUES "
        "('a', 'arq', now() - interval '90 seconds', now() - interval '60 seconds'), "
        "('b', 'arq', now() - interval '5 seconds', now() + interval '25 seconds')"
    )

    samples = await _metrics(client, viewer_headers)

    assert value(samples, "altar_schedulers_alive") == 1
    assert 5 <= value(samples, "altar_scheduler_heartbeat_age_seconds") < 60


async def test_no_heartbeat_age_before_any_scheduler_beat(client: Client, viewer_headers: dict[str, str]) -> None:
    samples = await _metrics(client, viewer_headers)

    assert value(samples, "altar_schedulers_alive") == 0
    assert not any(name == "altar_scheduler_heartbeat_age_seconds" for name, _ in samples)


async def test_consecutive_failures_count_the_latest_failed_runs_of_failing_configs(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    failing = await _config(pool)
    recovered = await _config(pool, symbol="ETH/USDT")
    for config_id, outcomes in (
        (failing, ("success", "failed", "failed", "failed")),
        (recovered, ("failed", "success")),
    ):
        for status in outcomes:
            run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
            await runs.begin_run(pool, run_id=run_id)
            await runs.complete_run(pool, run_id=run_id, status=status, duration_seconds=1.0, records_collected=0)

    samples = await _metrics(client, viewer_headers)

    failures = {
        dict(labels)["config_id"]: count
        for (name, labels), count in samples.items()
        if name == "altar_config_consecutive_failures"
    }
    assert failures == {str(failing): 3}  # a config whose latest run did not fail is not listed


async def test_http_requests_and_the_pool_are_labelled_with_this_process(
    client: Client, viewer_headers: dict[str, str]
) -> None:
    await client.get(f"{ADMIN_PATH}/configs/12345", headers=viewer_headers)
    app_pool: Pool = client.app.state.pool

    async with app_pool.acquire():  # a connection this process holds meanwhile
        samples = await _metrics(client, viewer_headers)

    process = process_identity()
    http = {
        "method": "GET",
        "path": f"{ADMIN_PATH}/configs/{{config_id}}",  # the route, not the raw path
        "status_code": "404",
        "app_name": "altar_trader_hub",
        "process": process,
    }
    assert value(samples, "altar_http_requests_total", **http) >= 1
    assert value(samples, "altar_db_pool_connections_in_use", process=process) == 1
    assert value(samples, "altar_db_pool_max_connections", process=process) == 5


async def test_two_web_processes_give_the_same_system_values(
    client: Client, viewer_headers: dict[str, str], served_url: str, pool: Pool
) -> None:
    config_id = await _config(pool)
    run_id = await runs.start_run(pool, config_id=config_id, trigger="manual")
    await runs.complete_run(pool, run_id=run_id, status="success", duration_seconds=1.0, records_collected=3)

    here = await _metrics(client, viewer_headers)
    async with httpx.AsyncClient(base_url=served_url, headers=viewer_headers) as other:
        there = parse((await other.get("/metrics")).text)

    system = [key for key in here if key[0].startswith(("altar_runs", "altar_candles", "altar_run_duration"))]
    assert system
    assert {key: here[key] for key in system} == {key: there[key] for key in system}
