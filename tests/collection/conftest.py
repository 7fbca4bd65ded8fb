"""Fixtures for collection: a fake exchange on a random port, real ccxt clients, a collector.

The fake speaks Binance unless a test parametrizes ``exchange_id`` (``EXCHANGES``: every dialect
proven by tests). The fake and the collector share one frozen clock (``clock``), so candle
boundaries never move during a test; ``clock.advance(...)`` lets time pass between runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
import pytest
import uvicorn

from backend.app import create_app
from backend.auth import repository as users
from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import FIXED_STEPS, to_ms
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate, Timeframe
from backend.db.pool import Connection, Pool, create_pool
from backend.settings import Settings
from tests.collection.fake_binance import running_fake_binance
from tests.collection.fake_bybit import running_fake_bybit
from tests.collection.fake_coinbase import running_fake_coinbase
from tests.collection.fake_exchange import FakeExchange, candle_values
from tests.collection.fake_gate import running_fake_gate
from tests.collection.fake_kraken import running_fake_kraken
from tests.collection.fake_kucoin import running_fake_kucoin
from tests.collection.fake_okx import running_fake_okx
from tests.conftest import ADMIN_EMAIL, PASSWORD, PASSWORD_HASH, serving

NOW = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
FAKES = {
    "binance": running_fake_binance,
    "okx": running_fake_okx,
    "kraken": running_fake_kraken,
    "bybit": running_fake_bybit,
    "kucoin": running_fake_kucoin,
    "coinbase": running_fake_coinbase,
    "gate": running_fake_gate,
}
EXCHANGES = tuple(FAKES)  # every exchange with a fake: the integrity tests run against each
# those serving 90 days of 1h candles (Kraken serves only its latest 720: test_exchange_reach.py)
DEEP_HISTORY = tuple(exchange for exchange in EXCHANGES if exchange != "kraken")
# those answering with the first candles from where they are asked (Gate: from the start of its window):
# a page capped below what was asked (``FakeExchange.page_limit``) still starts there
FROM_SINCE = ("binance", "bybit", "gate")

NewConfig = Callable[..., Awaitable[int]]
TEST_RATE_LIMIT_MS = 2  # ccxt's pause between two requests to a fake (times the cost ccxt gives the endpoint)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def ms(self) -> int:
        return to_ms(self.now)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def exchange_id() -> str:
    """The exchange the fake speaks; ``@pytest.mark.parametrize("exchange_id", EXCHANGES)`` runs a test on each."""
    return "binance"


@pytest.fixture
async def fake(clock: Clock, exchange_id: str) -> AsyncIterator[FakeExchange]:
    async with FAKES[exchange_id](["BTC/USDT", "ETH/USDT"], now_ms=clock.ms) as server:
        yield server


@pytest.fixture
def new_config(pool: Pool, exchange_id: str) -> NewConfig:
    """``await new_config(timeframes=[...], ...)``: a config of the fake's exchange; returns its id."""

    async def make(**fields: Any) -> int:
        return await create_config(pool, exchange=exchange_id, **fields)

    return make


@pytest.fixture
def collection_settings(settings: Settings, fake: FakeExchange) -> Settings:
    """Fast retries and heartbeats; ccxt pointed at the fake through EXCHANGE_OVERRIDES, its requests
    at most ``TEST_RATE_LIMIT_MS`` apart (Kraken's 1 s would make every retry wait)."""
    overrides = fake.exchange_overrides()
    overrides[fake.exchange_id]["rateLimit"] = TEST_RATE_LIMIT_MS
    return dataclasses.replace(
        settings,
        exchange_overrides=overrides,
        exchange_retry_base_ms=10,
        exchange_max_retries=2,
        run_heartbeat_seconds=1,
        job_timeout_seconds=60,
    )


@pytest.fixture
async def exchanges(collection_settings: Settings) -> AsyncIterator[ExchangeClients]:
    clients = ExchangeClients(collection_settings.exchange_overrides)
    yield clients
    await clients.close()


class RecordingPool(NamedTuple):
    pool: Pool
    sent: list[str]  # the text of every statement fetched through ``pool``, in order


@pytest.fixture
async def recording_pool(database_url: str) -> AsyncIterator[RecordingPool]:
    """A pool of its own that records the statements fetched through it (to count round trips)."""
    sent: list[str] = []

    class RecordingConnection(Connection):
        async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(query)
            return await super().fetch(query, *args, **kwargs)

    pool = await create_pool(database_url, connection_class=RecordingConnection)
    yield RecordingPool(pool, sent)
    await pool.close()


@pytest.fixture
def collector(pool: Pool, exchanges: ExchangeClients, collection_settings: Settings, clock: Clock) -> Collector:
    return Collector(pool=pool, exchanges=exchanges, settings=collection_settings, clock=clock)


@pytest.fixture
async def admin_api(
    collection_settings: Settings, collector: Collector, pool: Pool
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the test's collector (its clock, ccxt pointed at the fake), served by uvicorn in
    the test's event loop (the fake's); a client logged in as an admin."""
    app = create_app(collection_settings)
    app.on_startup.append(lambda app: setattr(app.state, "collector", collector))
    await users.create_user(pool, email=ADMIN_EMAIL, password_hash=PASSWORD_HASH, role="admin")
    async with (
        serving(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")) as url,
        httpx.AsyncClient(base_url=url) as api,
    ):
        response = await api.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
        api.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield api


async def create_config(
    pool: Pool, *, symbol: str = "BTC/USDT", timeframes: list[Timeframe] | None = None, **fields: Any
) -> int:
    data = ConfigCreate(symbol=symbol, timeframes=timeframes or ["1h"], interval_minutes=10, **fields)
    return (await configs.create_config(pool, data=data, created_by=None)).id


async def stored_open_times(pool: Pool, timeframe: str = "1h", symbol: str = "BTC/USDT") -> list[datetime]:
    rows = await pool.fetch(
        "SELECT open_time FROM candles WHERE symbol = $1 AND timeframe = $2 ORDER BY open_time", symbol, timeframe
    )
    return [row["open_time"] for row in rows]


async def assert_stored_series_is_the_truth(
    pool: Pool, fake: FakeExchange, first: datetime, last: datetime, timeframe: str = "1h"
) -> None:
    """Every candle the exchange has from ``first`` to ``last`` (open times, both included) is stored
    once with the exchange's values, and nothing else of ``timeframe`` is stored."""
    rows = await pool.fetch(
        "SELECT open_time, open, high, low, close, volume FROM candles WHERE symbol = 'BTC/USDT' AND timeframe = $1 "
        "ORDER BY open_time",
        timeframe,
    )
    step = FIXED_STEPS[timeframe] // timedelta(milliseconds=1)
    truth = [t for t in range(to_ms(first), to_ms(last) + 1, step) if fake.traded(t, step)]
    assert [to_ms(row["open_time"]) for row in rows] == truth
    assert [tuple(row[1:]) for row in rows] == [candle_values(t) for t in truth]


# recounted from the candles as the view shows them (rows and compacted segments alike)
RECOUNT_PERIODS = """
WITH periods AS MATERIALIZED (SELECT timeframe, period_start, period_end FROM candle_partitions)
SELECT p.period_start, count(*)::integer AS candles, min(c.open_minute) AS first_minute,
       max(c.open_minute) AS last_minute
FROM candles AS c JOIN periods AS p
    ON p.timeframe = c.timeframe AND c.open_minute >= p.period_start AND c.open_minute < p.period_end
WHERE c.series_id = $1 GROUP BY p.period_start ORDER BY p.period_start
"""
SUMMARY_PERIODS = """
SELECT period_start, candles, first_minute, last_minute FROM candle_counts WHERE series_id = $1 ORDER BY period_start
"""
RECOUNT_GAPS = """
SELECT open_minute AS after_minute, next_minute FROM (
    SELECT open_minute, lead(open_minute) OVER (ORDER BY open_minute) AS next_minute
    FROM candles WHERE series_id = $1
) AS pairs
WHERE next_minute - open_minute > $2 ORDER BY open_minute
"""
SUMMARY_GAPS = "SELECT after_minute, next_minute FROM candle_gaps WHERE series_id = $1 ORDER BY after_minute"


async def assert_summary_equals_recount(pool: Pool, series_id: int, step_minutes: int) -> None:
    """The coverage summary of a series (fixed ``step_minutes``) is what a recount of its candles gives."""
    assert [tuple(r) for r in await pool.fetch(SUMMARY_PERIODS, series_id)] == [
        tuple(r) for r in await pool.fetch(RECOUNT_PERIODS, series_id)
    ]
    assert [tuple(r) for r in await pool.fetch(SUMMARY_GAPS, series_id)] == [
        tuple(r) for r in await pool.fetch(RECOUNT_GAPS, series_id, step_minutes)
    ]
