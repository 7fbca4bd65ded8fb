"""Fixtures for collection: a fake exchange on a random port, real ccxt clients, a collector.

The fake speaks Binance unless a test parametrizes ``exchange_id`` (``EXCHANGES``: every dialect
proven by tests). The fake and the collector share one frozen clock (``clock``), so candle
boundaries never move during a test; ``clock.advance(...)`` lets time pass between runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.timeframes import to_ms
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate, Timeframe
from backend.db.pool import Pool
from backend.settings import Settings
from tests.collection.fake_binance import running_fake_binance
from tests.collection.fake_exchange import FakeExchange
from tests.collection.fake_okx import running_fake_okx

NOW = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
EXCHANGES = ("binance", "okx")  # the dialects the collector is proven against
FAKES = {"binance": running_fake_binance, "okx": running_fake_okx}

NewConfig = Callable[..., Awaitable[int]]


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
    """Fast retries and heartbeats; ccxt pointed at the fake through EXCHANGE_OVERRIDES."""
    return dataclasses.replace(
        settings,
        exchange_overrides=fake.exchange_overrides(),
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


@pytest.fixture
def collector(pool: Pool, exchanges: ExchangeClients, collection_settings: Settings, clock: Clock) -> Collector:
    return Collector(pool=pool, exchanges=exchanges, settings=collection_settings, clock=clock)


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
