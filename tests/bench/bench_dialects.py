"""A 30-day 1m backfill of one series per proven exchange, through the real collector and ccxt.

Each fake exchange runs in a process of its own (so that it does not share this one's CPU) and
costs O(page) per request. ccxt's rate limiter is set to 1 ms so that the figure is the cost of
the pipeline (ccxt, checks, storage); the line also says how long the same requests take at
ccxt's default rate limit for that exchange, which is what bounds a real backfill. An exchange
that does not serve 30 days of 1m candles is measured as far as the backfill reaches, and its
line says what the run stored and how it ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import ccxt

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate
from backend.db.pool import create_pool
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database

NOW = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
DAYS = 30
EXCHANGES = ("binance", "okx", "kraken", "bybit", "kucoin", "coinbase", "gate")
SERVE_FAKE = """
import asyncio, importlib, json, sys

async def serve():
    serve = getattr(importlib.import_module("tests.collection.fake_" + sys.argv[1]), "running_fake_" + sys.argv[1])
    async with serve(["BTC/USDT"], now_ms=lambda: int(sys.argv[2])) as fake:
        print(json.dumps(fake.exchange_overrides()), flush=True)
        await asyncio.Event().wait()

asyncio.run(serve())
"""


async def _backfill(database_url: str, exchange_id: str) -> str:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVE_FAKE, exchange_id, str(int(NOW.timestamp() * 1000)), stdout=asyncio.subprocess.PIPE
    )
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        assert server.stdout is not None
        async with asyncio.timeout(30):
            overrides: dict[str, Any] = json.loads(await server.stdout.readline())
        overrides[exchange_id]["rateLimit"] = 1
        settings = Settings(app_env="test", database_url=database_url, exchange_overrides=overrides)
        exchanges = ExchangeClients(overrides)
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=lambda: NOW)
        await pool.execute("TRUNCATE candle_data, candle_series, candle_empty_ranges")
        config = await configs.create_config(
            pool,
            data=ConfigCreate(
                symbol="BTC/USDT", exchange=exchange_id, timeframes=["1m"], interval_minutes=10, backfill_days=DAYS
            ),
            created_by=None,
        )
        began = time.perf_counter()
        outcome = await collector.collect_now(config.id)
        elapsed = time.perf_counter() - began
        await exchanges.close()
        assert outcome is not None
        await pool.execute("DELETE FROM data_collection_configs WHERE id = $1", config.id)
        stored = outcome.records_collected
        requests = outcome.metadata.get("by_timeframe", {}).get("1m", {}).get("pages", 0)
        default_limit_ms = getattr(ccxt, exchange_id)().rateLimit
        per_thousand = f"{1000 * requests / stored:.1f}" if stored else "-"
        ended = outcome.status + (f" ({outcome.error_type})" if outcome.error_type else "")
        return (
            f"{exchange_id:>8}: {DAYS}-day 1m backfill, {stored:,} candles in {elapsed:.2f} s = "
            f"{stored / elapsed:,.0f} candles/s, {requests} requests = {per_thousand} per 1,000 "
            f"candles (at ccxt's default rate limit of {default_limit_ms:g} ms: at least "
            f"{requests * default_limit_ms / 1000:.0f} s); status {ended}"
        )
    finally:
        await pool.close()
        server.terminate()
        await server.wait()


async def main() -> None:
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    async with throwaway_database("altar_bench_dialects") as url:
        for exchange_id in EXCHANGES:
            print(await _backfill(url, exchange_id))
