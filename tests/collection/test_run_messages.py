"""What a run tells an operator: the root cause of a failure, real retries and durations, and log
messages that name the config, exchange, symbol and timeframe."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.conftest import Clock, create_config
from tests.collection.fake_binance import FakeBinance
from tests.collection.fake_exchange import high_below_low

OFFLINE = {
    "binance": {
        "urls": {"api": {"public": "http://altar-offline.invalid/api/v3"}},
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
    }
}


@pytest.fixture
async def offline_collector(pool: Pool, collection_settings: Settings, clock: Clock) -> AsyncIterator[Collector]:
    """A collector whose exchange's host does not resolve, as offline."""
    settings = dataclasses.replace(collection_settings, exchange_overrides=OFFLINE)
    exchanges = ExchangeClients(settings.exchange_overrides)
    yield Collector(pool=pool, exchanges=exchanges, settings=settings, clock=clock)
    await exchanges.close()


async def test_offline_failure_keeps_the_root_cause(pool: Pool, offline_collector: Collector) -> None:
    outcome = await offline_collector.collect_now(await create_config(pool))

    assert outcome is not None
    assert (outcome.status, outcome.error_type) == ("failed", "ExchangeNotAvailable")
    assert outcome.error_message is not None
    assert "exchangeInfo" in outcome.error_message
    assert "Cannot connect to host altar-offline.invalid" in outcome.error_message


async def test_offline_failure_says_its_cause_in_plain_words_once_for_every_timeframe(
    pool: Pool, offline_collector: Collector
) -> None:
    outcome = await offline_collector.collect_now(await create_config(pool, timeframes=["1m", "1h", "4h"]))

    assert outcome is not None
    assert outcome.error_cause == "cannot reach altar-offline.invalid: name not resolved"
    stored = await pool.fetchrow(
        "SELECT error_cause, error_message FROM job_execution_logs WHERE id = $1", outcome.run_id
    )
    assert stored is not None
    assert stored["error_cause"] == outcome.error_cause
    assert all(f"{timeframe}: " in stored["error_message"] for timeframe in ("1m", "1h", "4h"))  # the full chains
    assert outcome.metadata["by_timeframe"]["1h"]["cause"] == outcome.error_cause


async def test_refused_connection_names_the_host_and_what_happened(
    pool: Pool, collection_settings: Settings, clock: Clock
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    overrides = {"binance": {**OFFLINE["binance"], "urls": {"api": {"public": f"http://127.0.0.1:{port}/api/v3"}}}}
    settings = dataclasses.replace(collection_settings, exchange_overrides=overrides)
    exchanges = ExchangeClients(settings.exchange_overrides)
    try:
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=clock)
        outcome = await collector.collect_now(await create_config(pool))
    finally:
        await exchanges.close()

    assert outcome is not None
    assert outcome.error_cause == "cannot reach 127.0.0.1: connection refused"


async def test_timeframes_failing_for_different_causes_each_name_theirs(
    pool: Pool, collector: Collector, fake: FakeBinance
) -> None:
    fake.unsupported_intervals = {"4h", "1d"}
    outcome = await collector.collect_now(await create_config(pool, timeframes=["1h", "4h", "1d"]))

    assert outcome is not None
    assert outcome.status == "partial"
    assert outcome.error_cause is not None
    assert outcome.error_cause == "4h, 1d: binance says: Invalid interval."  # one cause, said once


async def test_an_exchange_answering_503_is_said_unavailable_with_its_status(
    pool: Pool, collector: Collector, fake: FakeBinance
) -> None:
    fake.fail_candles(503, times=100)  # every try of the run
    outcome = await collector.collect_now(await create_config(pool, timeframes=["1h", "4h"]))

    assert outcome is not None
    assert outcome.status == "failed"
    assert outcome.error_cause == "binance is unavailable (HTTP 503)"


async def test_offline_run_reports_its_retries_and_how_long_they_took(pool: Pool, offline_collector: Collector) -> None:
    outcome = await offline_collector.collect_now(await create_config(pool, timeframes=["1h", "4h"]))

    assert outcome is not None
    for timeframe in ("1h", "4h"):
        details = outcome.metadata["by_timeframe"][timeframe]
        assert details["retries"] == 2
        assert details["duration_seconds"] > 0


async def test_run_duration_is_rounded_to_milliseconds_like_the_stats(pool: Pool, collector: Collector) -> None:
    outcome = await collector.collect_now(await create_config(pool))

    assert outcome is not None
    stored = await pool.fetchval("SELECT duration_seconds FROM job_execution_logs WHERE id = $1", outcome.run_id)
    assert stored == outcome.duration_seconds == round(outcome.duration_seconds, 3)


async def test_every_collection_message_names_the_config_exchange_symbol_and_timeframe(
    pool: Pool, collector: Collector, fake: FakeBinance, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_candles(503)  # a retry
    broken = clock.now.replace(minute=0, second=0) - timedelta(hours=5)
    fake.corrupt_candles(high_below_low, at_ms=[to_ms(broken)], times=100)  # rejected candles, partial
    fake.unsupported_intervals = {"4h"}  # a failed timeframe
    config_id = await create_config(pool, timeframes=["1h", "4h"])

    with caplog.at_level(logging.INFO, logger="backend.collection"):
        await collector.collect_now(config_id)

    messages = [r.getMessage() for r in caplog.records if r.name.startswith("backend.collection")]
    assert len(messages) >= 4
    for message in messages:
        assert f"config {config_id} binance BTC/USDT " in message
        assert " 1h" in message or " 4h" in message
