"""Exchange state in PostgreSQL: pauses and bans an exchange ordered, as any process reads them, and
the requests each process made, added up at its heartbeats.

Real ccxt clients against the fake Binance; each client set records as a process of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import ccxt
import pytest

from backend.collection.exchange_states import ExchangeActivity, ExchangeState, read_exchange_states
from backend.collection.exchanges import ExchangeClients
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import FakeBinance

WAIT_SECONDS = 10


@pytest.fixture
async def activity(pool: Pool) -> AsyncIterator[ExchangeActivity]:
    recorder = ExchangeActivity(pool, process="web.1")
    yield recorder
    await recorder.close()


@pytest.fixture
async def recorded_clients(collection_settings: Settings, activity: ExchangeActivity) -> AsyncIterator[ExchangeClients]:
    clients = ExchangeClients(collection_settings.exchange_overrides, activity=activity)
    yield clients
    await clients.close()


async def _state(pool: Pool, exchange: str = "binance") -> ExchangeState:
    """The exchange's state (an exchange no config names and nobody asked yet is not listed: ok)."""
    states = {state.exchange: state for state in await read_exchange_states(pool)}
    return states.get(exchange, ExchangeState(exchange=exchange, state="ok", since=None, until=None, reason=None))


async def _until_state(pool: Pool, wanted: str) -> ExchangeState:
    """The exchange's state once it reads ``wanted`` (recording happens in the background)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while (state := await _state(pool)).state != wanted:
            await asyncio.sleep(0.02)
    return state


async def test_rate_limit_is_read_as_paused_until_its_retry_after(
    pool: Pool, recorded_clients: ExchangeClients, fake: FakeBinance
) -> None:
    client = recorded_clients.get("binance")
    await client.ensure_markets()
    fake.fail_candles(429, retry_after=30)
    asked_at = datetime.now(UTC)

    with pytest.raises(ccxt.DDoSProtection):
        await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    state = await _until_state(pool, "paused")

    assert state.since is not None
    assert state.until is not None
    assert asked_at - timedelta(seconds=1) <= state.since <= datetime.now(UTC)
    assert timedelta(seconds=29) < state.until - state.since <= timedelta(seconds=31)
    assert state.reason == "rate limited (429), Retry-After 30 s"


async def test_ban_is_read_as_banned(pool: Pool, recorded_clients: ExchangeClients, fake: FakeBinance) -> None:
    client = recorded_clients.get("binance")
    await client.ensure_markets()
    fake.fail_candles(418, retry_after=120)

    with pytest.raises(ccxt.DDoSProtection):
        await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    state = await _until_state(pool, "banned")

    assert state.reason == "banned (418), Retry-After 120 s"


async def test_pause_that_ended_is_read_as_ok(pool: Pool, recorded_clients: ExchangeClients, fake: FakeBinance) -> None:
    client = recorded_clients.get("binance")
    await client.ensure_markets()
    fake.fail_candles(429, retry_after=1)
    with pytest.raises(ccxt.DDoSProtection):
        await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    await _until_state(pool, "paused")

    async with asyncio.timeout(WAIT_SECONDS):  # its end is recorded once it has passed
        while await pool.fetchval("SELECT count(*) FROM exchange_pauses"):
            await asyncio.sleep(0.02)

    state = await _state(pool)
    assert (state.state, state.since, state.until, state.reason) == ("ok", None, None, None)


async def test_pause_of_another_process_is_read_by_every_process(
    pool: Pool, recorded_clients: ExchangeClients, fake: FakeBinance
) -> None:
    worker = ExchangeActivity(pool, process="worker.1")
    worker_clients = ExchangeClients(fake.exchange_overrides(), activity=worker)
    try:
        client = worker_clients.get("binance")
        await client.ensure_markets()
        fake.fail_candles(429, retry_after=60)
        with pytest.raises(ccxt.DDoSProtection):
            await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)

        state = await _until_state(pool, "paused")
    finally:
        await worker_clients.close()
        await worker.close()

    assert recorded_clients.get("binance").pause.remaining_seconds == 0  # this process was never paused
    assert state.exchange == "binance"


async def test_exchanges_of_enabled_configs_read_ok_without_any_request(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled) "
        "VALUES ('BTC/USDT', 'kraken', '{1h}', 10, true), ('ETH/USDT', 'okx', '{1h}', 10, false)"
    )

    states = await read_exchange_states(pool)

    assert states == [ExchangeState(exchange="kraken", state="ok", since=None, until=None, reason=None)]


async def test_requests_reach_the_totals_at_a_flush_not_before(
    pool: Pool, recorded_clients: ExchangeClients, activity: ExchangeActivity, fake: FakeBinance
) -> None:
    client = recorded_clients.get("binance")
    await client.ensure_markets()
    for _ in range(3):
        await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    before = await read_exchange_states(pool)

    await activity.flush()

    assert before == []
    state = await _state(pool)
    assert state.requests == fake.market_requests + len(fake.requests) == 4
    assert (state.errors, state.rate_limits, state.bans) == (0, 0, 0)


async def test_failed_answers_count_as_errors_and_rate_limits_and_bans_apart(
    pool: Pool, recorded_clients: ExchangeClients, activity: ExchangeActivity, fake: FakeBinance
) -> None:
    client = recorded_clients.get("binance")
    await client.ensure_markets()
    fake.fail_candles(500)
    fake.fail_candles(429, retry_after=0)
    fake.fail_candles(418, retry_after=0)
    for _ in range(3):
        with pytest.raises(ccxt.BaseError):
            await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)

    await activity.flush()

    state = await _state(pool)
    assert (state.requests, state.errors, state.rate_limits, state.bans) == (5, 3, 1, 1)


async def test_a_request_that_got_no_answer_counts_as_an_error(
    pool: Pool, activity: ExchangeActivity, fake: FakeBinance
) -> None:
    overrides = fake.exchange_overrides()
    clients = ExchangeClients(overrides, activity=activity)
    try:
        client = clients.get("binance")
        await client.ensure_markets()
        fake.stall_candles(5)
        client.ccxt.timeout = 200  # ms
        with pytest.raises(ccxt.RequestTimeout):
            await client.fetch_ohlcv("BTC/USDT", "1h", 0, 10)
    finally:
        await clients.close()

    await activity.flush()

    state = await _state(pool)
    assert (state.requests, state.errors) == (2, 1)


async def test_counts_add_up_across_processes_and_flushes(pool: Pool, activity: ExchangeActivity) -> None:
    other = ExchangeActivity(pool, process="worker.1")
    activity.count("binance", requests=3, errors=1)
    other.count("binance", requests=2, rate_limits=1)
    await activity.flush()
    await other.flush()
    activity.count("binance", requests=1)
    await activity.flush()

    state = await _state(pool)

    assert (state.requests, state.errors, state.rate_limits, state.bans) == (6, 1, 1, 0)
