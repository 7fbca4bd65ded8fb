"""Re-verifying a year of 1m candles (a request's first 10,000) per proven exchange, through the
real collector and ccxt at ccxt's default rate limit, each request answered by the fake after
``LATENCY`` seconds, a round trip to a real exchange. Each exchange is measured twice: with
REVERIFY_SECONDS as high as an hour (as before it bounded the comparison), and at its default of
20 s, which keeps the answer under Heroku's 30 s router timeout: the line says how long the answer
took, where the comparison stopped and how many candles it compared.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.schemas import ReverifyRequest
from backend.db.pool import create_pool
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database
from tests.collection.conftest import FAKES

NOW = datetime(2025, 1, 15, 12, 30, tzinfo=UTC)
LATENCY = 0.15  # seconds per request
EXCHANGES = ("binance", "okx", "bybit", "kucoin", "coinbase")  # those serving a year of 1m candles
LIMITS = (3600, 20)  # REVERIFY_SECONDS


async def _reverify(database_url: str, exchange_id: str, reverify_seconds: int) -> str:
    async with FAKES[exchange_id](["BTC/USDT"], now_ms=lambda: int(NOW.timestamp() * 1000)) as fake:
        fake.latency_seconds = LATENCY
        pool = await create_pool(database_url, min_size=1, max_size=4)
        settings = Settings(
            app_env="test",
            database_url=database_url,
            exchange_overrides=fake.exchange_overrides(),
            reverify_seconds=reverify_seconds,
        )
        exchanges = ExchangeClients(settings.exchange_overrides)
        try:
            await pool.execute("TRUNCATE candle_data, candle_series, candle_empty_ranges")
            collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=lambda: NOW)
            request = ReverifyRequest(
                exchange=exchange_id, symbol="BTC/USDT", timeframe="1m", start=NOW - timedelta(days=365), end=NOW
            )
            began = time.perf_counter()
            answer = await collector.reverify(request)
            elapsed = time.perf_counter() - began
        finally:
            await exchanges.close()
            await pool.close()
    ended = f", {answer.error_type}: {answer.error}" if answer.error_type else ""
    return (
        f"{exchange_id:>8}, REVERIFY_SECONDS={reverify_seconds:>4}: answered in {elapsed:5.1f} s after "
        f"{len(fake.requests):3} requests, {answer.exchange_candles:6,} candles compared up to "
        f"{answer.end:%Y-%m-%d %H:%M}{ended}"
    )


async def main() -> None:
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    async with throwaway_database("altar_bench_reverify") as url:
        for exchange_id in EXCHANGES:
            for seconds in LIMITS:
                print(await _reverify(url, exchange_id, seconds))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")


if __name__ == "__main__":
    asyncio.run(main())
