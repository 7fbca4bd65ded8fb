"""Collection figures: candle storage throughput, and a full run of 50 configs against the fake exchange.

Storage: candles per second through the storage path (COPY into a staging table + merge, one
transaction per 1,000-candle page) for 100k and 1M candles, next to one bare COPY of the same rows
into an empty unindexed copy of the table, and next to row-by-row INSERTs (measured on a sample).
Run: 50 configs x (1m, 5m, 1h) backfilling 7 days from a fake Binance in its own process,
through the real ccxt client: wall time, candles stored, requests, peak memory of this process.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from backend.collection import storage as candles
from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.repository import CandleRow
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database

PAGE = 1000
ROW_BY_ROW_SAMPLE = 20_000
CONFIGS = 50
START = datetime(2020, 1, 1, tzinfo=UTC)
INSERT_ONE = """
INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (exchange, symbol, timeframe, open_time) DO NOTHING
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pages(count: int) -> Iterator[list[CandleRow]]:
    """``count`` 1m candles in pages, generated as they are stored (never all in memory)."""
    for first in range(0, count, PAGE):
        yield [
            (START + timedelta(minutes=i), 100.0 + i % 7, 101.0, 99.0, 100.5, 1.0 + i % 3)
            for i in range(first, min(first + PAGE, count))
        ]


async def _storage_path(pool: Pool, count: int) -> float:
    began = time.perf_counter()
    for page in _pages(count):
        await candles.store_candles(pool, exchange="binance", symbol="BENCH/USDT", timeframe="1m", rows=page)
    return time.perf_counter() - began


async def _bare_copy(pool: Pool, count: int) -> float:
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS candles_bare; CREATE TABLE candles_bare (LIKE candles)")
        records = (("binance", "BENCH/USDT", "1m", *row) for page in _pages(count) for row in page)
        began = time.perf_counter()
        await conn.copy_records_to_table("candles_bare", records=records)
        elapsed = time.perf_counter() - began
        await conn.execute("DROP TABLE candles_bare")
    return elapsed


async def _row_by_row(pool: Pool, count: int) -> float:
    async with pool.acquire() as conn:
        began = time.perf_counter()
        for page in _pages(count):
            for row in page:
                await conn.execute(INSERT_ONE, "binance", "ROWS/USDT", "1m", *row)
        return time.perf_counter() - began


async def bench_storage(pool: Pool) -> None:
    print(f"storage ({PAGE}-candle pages, one transaction each):")
    sample_seconds = await _row_by_row(pool, ROW_BY_ROW_SAMPLE)
    row_rate = ROW_BY_ROW_SAMPLE / sample_seconds
    for count in (100_000, 1_000_000):
        await pool.execute("TRUNCATE candles")
        stored = await _storage_path(pool, count)
        again = await _storage_path(pool, count)  # the same candles again: nothing changes
        bare = await _bare_copy(pool, count)
        print(
            f"  {count:>9,} candles: storage path {count / stored:>9,.0f}/s ({stored:.2f} s), "
            f"bare COPY {count / bare:>9,.0f}/s ({bare:.2f} s), ratio {bare / stored:.2f}; "
            f"re-storing unchanged {count / again:>9,.0f}/s; "
            f"row-by-row INSERT {row_rate:,.0f}/s (measured on {ROW_BY_ROW_SAMPLE:,}); "
            f"peak RSS {_peak_rss_mb():.0f} MB"
        )
    await pool.execute("TRUNCATE candles")


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


async def bench_full_run(pool: Pool, database_url: str) -> None:
    symbols = [f"C{i:02d}/USDT" for i in range(CONFIGS)]
    now = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE_FAKE,
        str(int(now.timestamp() * 1000)),
        ",".join(symbols),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        url = (await asyncio.wait_for(server.stdout.readline(), 30)).decode().strip()
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
            await bench_storage(pool)
            await bench_full_run(pool, url)
        finally:
            await pool.close()
