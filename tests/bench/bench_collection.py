"""Collection figures: a full run of 50 configs against the fake exchange (storage: ``bench_storage``).

Run: 50 configs x (1m, 5m, 1h) backfilling 7 days from a fake Binance in its own process,
through the real ccxt client: wall time, candles stored, requests, peak memory of this process.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from datetime import UTC, datetime

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database

CONFIGS = 50


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# the fake exchange in a process of its own, so that it does not share this one's CPU
SERVE_FAKE = """
import asyncio, sys
from tests.collection.fake_binance import running_fake_binance

async def serve():
    async with running_fake_binance(sys.argv[2].split(","), now_ms=lambda: int(sys.argv[1])) as fake:
        print(fake.url, flush=True)
        await asyncio.Event().wait()

asyncio.run(serve())
"""


async def start_fake_binance(symbols: list[str], now: datetime) -> tuple[asyncio.subprocess.Process, str]:
    """The fake Binance serving ``symbols`` at a frozen ``now`` in a process of its own, and its URL."""
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_FAKE,
        str(int(now.timestamp() * 1000)),
        ",".join(symbols),
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    async with asyncio.timeout(30):
        first = await server.stdout.readline()
    return server, first.decode().strip()


async def bench_full_run(pool: Pool, database_url: str) -> None:
    symbols = [f"C{i:02d}/USDT" for i in range(CONFIGS)]
    now = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
    server, url = await start_fake_binance(symbols, now)
    try:
        overrides = {
            "binance": {
                "urls": {"api": {"public": f"{url}/api/v3"}},
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
                "rateLimit": 10,
            }
        }
        settings = Settings(app_env="test", database_url=database_url, exchange_overrides=overrides)
        exchanges = ExchangeClients(overrides)
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=lambda: now)
        ids = [
            (
                await configs.create_config(
                    pool,
                    data=ConfigCreate(symbol=symbol, timeframes=["1m", "5m", "1h"], interval_minutes=10),
                    created_by=None,
                )
            ).id
            for symbol in symbols
        ]
        rss_before = _peak_rss_mb()
        began = time.perf_counter()
        outcomes = await asyncio.gather(*(collector.collect_now(config_id) for config_id in ids))
        elapsed = time.perf_counter() - began
        await exchanges.close()
        stored = await pool.fetchval("SELECT count(*) FROM candles")
        pages = sum(o.metadata["by_timeframe"][tf]["pages"] for o in outcomes if o for tf in ("1m", "5m", "1h"))
        statuses = {o.status for o in outcomes if o}
        print(
            f"full run: {CONFIGS} configs x 3 timeframes, 7 days backfill (ccxt rateLimit 10 ms): "
            f"{elapsed:.1f} s wall, {stored:,} candles stored ({stored / elapsed:,.0f}/s), {pages} requests, "
            f"statuses {sorted(statuses)}, peak RSS {_peak_rss_mb():.0f} MB (before the run {rss_before:.0f} MB)"
        )
    finally:
        server.terminate()
        await server.wait()


async def main() -> None:
    async with throwaway_database("altar_bench") as url:
        pool = await create_pool(url, min_size=1, max_size=10)
        try:
            await bench_full_run(pool, url)
        finally:
            await pool.close()
