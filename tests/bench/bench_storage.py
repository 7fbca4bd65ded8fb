"""Candle storage at scale: each measure with its goal and ratio, in one run.

- store vs bare COPY: 1,000,000 1m candles of one series in 1,000-candle pages through the
  collector's writer (pages sharing transactions, as when the next page is at hand), against one
  bare COPY of the same rows into an unindexed table of the same columns; both generate the rows
  as they go. Once on an empty database, once with 10,000,000 candles of ten other series stored
  over the same months (the new series' index entries then land in the middle of every index).
  Each side is measured three times, alternating, and the best of each is compared.
- one-year 1m backfill (525,600 candles) by the collector through ccxt against the fake Binance in a
  process of its own (ccxt's rate limiter on, at 1 ms: the fake has no limit to respect), against a
  raw floor in the same run: aiohttp GETs of the same pages, JSON, one COPY per page into an
  unindexed table. Best of three alternating runs of each.
- bytes per million candles (heap + indexes): one series written in order, and twenty series
  written page by page in turn (as concurrent runs write).
- /coverage and one day of /ohlcv (limit 1440) through HTTP: the app served by uvicorn
  (``python -m backend serve``), one client, ``hey -c 1`` (Debian package ``hey``).
- compacted months: a month of 23 one-minute series (993,600 candles) with prices and volumes as
  an exchange sends them (a random walk on a 0.01 tick, volumes in lots of 0.00001), stored by the
  writer; bytes per million candles of its partition (the open month's storage), then the daily
  upkeep's compaction of every closed month in the database (those candles and the 16M+ above),
  bytes per million candles of the month's segments, and the same HTTP reads again, compacted.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.collection import repository
from backend.collection.collector import Collector
from backend.collection.compaction import compact_closed_partitions
from backend.collection.exchanges import ExchangeClients
from backend.collection.repository import CandleRow, StoredSeries
from backend.collection.storage import PartitionCache, SeriesWriter
from backend.collection.timeframes import to_minute
from backend.configs import repository as configs
from backend.configs.schemas import ConfigCreate
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.bench.bench_collection import start_fake_binance
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

PAGE = 1000
STORED = 1_000_000
PRELOADED_SERIES = 10
REPEATS = 3
START = datetime(2020, 1, 1, tzinfo=UTC)
INTERLEAVED_SERIES = 20
BACKFILL_NOW = datetime(2025, 1, 15, 12, 30, 7, tzinfo=UTC)
BACKFILL_DAYS = 365
CCXT_RATE_LIMIT_MS = 1
HOLE_EVERY = 9973  # minutes: about 100 gaps per million candles
REQUESTS = 400
MARKET_SERIES = 23
MARKET_START = datetime(2021, 1, 1, tzinfo=UTC)
MARKET_DAYS = 30

PRELOAD = """
INSERT INTO candle_data (series_id, open_minute, open, high, low, close, volume)
SELECT $1, m, 100 + (m % 97) * 0.01, 101 + (m % 89) * 0.01, 99 - (m % 83) * 0.01, 100 + (m % 79) * 0.01, 1 + m % 5
FROM generate_series($2::integer, $2 + $3 - 1) AS m
WHERE $4 = 0 OR m % $4 <> 0
"""
SIZE_OF_TIMEFRAME = """
SELECT coalesce(sum(pg_total_relation_size(partition_name::regclass)), 0)::float8 FROM candle_partitions
WHERE timeframe = $1
"""
# heap, TOAST and primary key of a table, and the candles it holds
SIZE_OF = "SELECT pg_total_relation_size($1::regclass)::float8"
COMPACTED = "SELECT coalesce(sum(candles), 0)::float8 FROM candle_segments"
SIZE_OF_SEGMENTS = """
SELECT coalesce(sum(pg_total_relation_size(partition_name::regclass)), 0)::float8 FROM candle_segment_partitions
"""


def _pages(count: int, start: datetime = START) -> Iterator[list[CandleRow]]:
    """``count`` 1m candles in pages, generated as they are stored (never all in memory)."""
    for first in range(0, count, PAGE):
        yield [
            (start + timedelta(minutes=i), 100.0 + i % 7, 101.0, 99.0, 100.5, 1.0 + i % 3)
            for i in range(first, min(first + PAGE, count))
        ]


async def _series(pool: Pool, symbol: str, timeframe: str = "1m") -> StoredSeries:
    return await repository.open_series(pool, exchange="binance", symbol=symbol, timeframe=timeframe)


async def _store(pool: Pool, series: StoredSeries, count: int) -> float:
    partitions = PartitionCache(pool)
    began = time.perf_counter()
    async with SeriesWriter(pool, series, partitions) as writer:
        for page in _pages(count):
            await writer.store(page, more_coming=True)
    return time.perf_counter() - began


async def _bare_copy(pool: Pool, count: int) -> float:
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS candles_bare; CREATE TABLE candles_bare (LIKE candle_data)")
        records = ((1, to_minute(row[0]), *row[1:]) for page in _pages(count) for row in page)
        began = time.perf_counter()
        await conn.copy_records_to_table("candles_bare", records=records)
        elapsed = time.perf_counter() - began
        await conn.execute("DROP TABLE candles_bare")
    return elapsed


async def _preload(pool: Pool, symbol: str, count: int, hole_every: int) -> StoredSeries:
    series = await _series(pool, symbol)
    first = to_minute(START)
    await pool.execute("SELECT create_candle_partitions('1m', $1, $2)", first, first + count)
    await pool.execute(PRELOAD, series.id, first, count, hole_every)
    await pool.execute("SELECT recount_candle_series($1)", series.id)
    return series


async def _size(pool: Pool, timeframe: str) -> float:
    size: float = await pool.fetchval(SIZE_OF_TIMEFRAME, timeframe)
    return size


async def bench_store(pool: Pool, results: dict[str, Any]) -> None:
    """Each side measured ``REPEATS`` times, alternating; the best of each (the machine is shared)."""
    stored, bare = [], []
    for _ in range(REPEATS):
        await pool.execute("TRUNCATE candle_data")
        stored.append(await _store(pool, await _series(pool, "STORE/USDT"), STORED))
        bare.append(await _bare_copy(pool, STORED))
    results["store empty"] = (STORED / min(stored), STORED / min(bare))
    results["bytes in order"] = await _size(pool, "1m") / STORED
    async with SeriesWriter(pool, await _series(pool, "STORE/USDT"), PartitionCache(pool)) as writer:
        began = time.perf_counter()
        for page in _pages(STORED):
            await writer.store(page, more_coming=True)
        results["restore unchanged"] = STORED / (time.perf_counter() - began)
    await pool.execute("TRUNCATE candle_data")

    # the measured series' ids sort before the ten preloaded ones: their index entries land inside
    measured = [await _series(pool, f"STORE10M{k}/USDT") for k in range(REPEATS)]
    began = time.perf_counter()
    for k in range(PRELOADED_SERIES):
        await _preload(pool, f"PRE{k}/USDT", STORED, HOLE_EVERY if k % 2 == 0 else 0)
    await pool.execute("VACUUM ANALYZE candle_data")
    results["preload"] = time.perf_counter() - began
    stored, bare = [], []
    for series in measured:
        stored.append(await _store(pool, series, STORED))
        bare.append(await _bare_copy(pool, STORED))
    results["store 10M"] = (STORED / min(stored), STORED / min(bare))


async def bench_interleaved(pool: Pool, results: dict[str, Any]) -> None:
    """Twenty 3m series written a page each in turn, like concurrent runs: size per million."""
    writers = [
        SeriesWriter(pool, await _series(pool, f"MIX{k}/USDT", "3m"), PartitionCache(pool))
        for k in range(INTERLEAVED_SERIES)
    ]
    per_series = STORED // INTERLEAVED_SERIES
    for first in range(0, per_series, PAGE):
        for writer in writers:
            rows = [
                (START + timedelta(minutes=3 * i), 100.0, 101.0, 99.0, 100.5, 1.0)
                for i in range(first, min(first + PAGE, per_series))
            ]
            await writer.store(rows)
    results["bytes interleaved"] = await _size(pool, "3m") / STORED


def _hey(url: str, token: str) -> tuple[float, float]:
    command = ["hey", "-c", "1", "-n", str(REQUESTS), "-disable-compression", "-H", f"Authorization: Bearer {token}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=600).stdout
    percentile = {m[0]: float(m[1]) * 1000 for m in re.findall(r"(\d+)%+ in ([\d.]+) secs", output)}
    codes = set(re.findall(r"\[(\d+)\]\s+\d+ responses", output))
    if codes != {"200"}:
        raise RuntimeError(f"{url} answered {codes}")
    return percentile["50"], percentile["95"]


async def bench_http(pool: Pool, url: str, results: dict[str, Any]) -> None:
    day = await _series(pool, "DAY/USDT")
    async with SeriesWriter(pool, day, PartitionCache(pool)) as writer:
        await writer.store(next(_pages(1440)))
    await users.create_user(pool, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
    await _http_figures(url, results, "")
    results["table candles"] = await pool.fetchval("SELECT sum(candles)::float8 FROM candle_counts")


async def _http_figures(url: str, results: dict[str, Any], suffix: str) -> None:
    """/coverage and one day of /ohlcv through HTTP, as ``results[name + suffix]``."""
    process, base = await serve(url)
    try:
        token = await login(base)
        coverage = f"{base}/api/v1/market-data/coverage?symbol="
        results["coverage long" + suffix] = _hey(coverage + "PRE0/USDT", token)
        results["coverage day" + suffix] = _hey(coverage + "DAY/USDT", token)
        one_day = (START + timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ")
        results["ohlcv day" + suffix] = _hey(
            f"{base}/api/v1/market-data/ohlcv?symbol=PRE1/USDT&timeframe=1m&limit=1440&start={one_day}", token
        )
        if suffix:
            market_day = (MARKET_START + timedelta(days=17)).strftime("%Y-%m-%dT%H:%M:%SZ")
            results["ohlcv market day" + suffix] = _hey(
                f"{base}/api/v1/market-data/ohlcv?symbol=MARKET7/USDT&timeframe=1m&limit=1440&start={market_day}",
                token,
            )
    finally:
        process.terminate()
        process.wait(timeout=30)


def _market_pages(rng: random.Random) -> Iterator[list[CandleRow]]:
    """A month of 1m candles as an exchange sends them: floats parsed from decimal text."""
    price = rng.randint(1_000_000, 9_000_000)  # in cents
    minutes = MARKET_DAYS * 1440
    for first in range(0, minutes, PAGE):
        page: list[CandleRow] = []
        for i in range(first, min(first + PAGE, minutes)):
            open_ = price if rng.random() < 0.97 else price + rng.randint(-50, 50)
            close = open_ + round(rng.gauss(0, open_ * 0.0006))
            high = max(open_, close) + abs(round(rng.gauss(0, open_ * 0.0003)))
            low = min(open_, close) - abs(round(rng.gauss(0, open_ * 0.0003)))
            lots = round(math.exp(rng.gauss(2.0, 1.0)) * 100_000)
            page.append(
                (MARKET_START + timedelta(minutes=i), open_ / 100, high / 100, low / 100, close / 100, lots / 1e5)
            )
            price = close
        yield page


async def bench_compaction(pool: Pool, url: str, results: dict[str, Any]) -> None:
    """A month of market-like candles, its size as rows, every closed month compacted, sizes and reads again."""
    rng = random.Random(18)
    for k in range(MARKET_SERIES):
        async with SeriesWriter(pool, await _series(pool, f"MARKET{k}/USDT"), PartitionCache(pool)) as writer:
            for page in _market_pages(rng):
                await writer.store(page, more_coming=True)
    month = "candle_data_1m_2021_01"
    candles = MARKET_SERIES * MARKET_DAYS * 1440
    await pool.execute(f"VACUUM ANALYZE {month}")
    results["bytes open month"] = await pool.fetchval(SIZE_OF, month) / candles
    began = time.perf_counter()
    emptied = await compact_closed_partitions(pool, now=datetime.now(UTC))
    results["compaction"] = (time.perf_counter() - began, await pool.fetchval(COMPACTED), len(emptied), _load())
    results["bytes compacted month"] = await pool.fetchval(SIZE_OF, "candle_segments_1m_2021_01") / candles
    results["bytes compacted all"] = await pool.fetchval(SIZE_OF_SEGMENTS) / await pool.fetchval(COMPACTED)
    await pool.execute("ANALYZE candle_segments")
    await _http_figures(url, results, " compacted")


async def _raw_floor(pool: Pool, fake_url: str) -> tuple[float, int]:
    """aiohttp + json + one COPY per page into an unindexed table: no ccxt, no bookkeeping."""
    newest_closed = (to_minute(BACKFILL_NOW) - 1) * 60_000
    since = (to_minute(BACKFILL_NOW - timedelta(days=BACKFILL_DAYS))) * 60_000
    stored = 0
    async with pool.acquire() as conn, aiohttp.ClientSession() as session:
        await conn.execute("DROP TABLE IF EXISTS candles_floor; CREATE TABLE candles_floor (LIKE candle_data)")
        began = time.perf_counter()
        while since <= newest_closed:
            params = {"symbol": "RAWUSDT", "interval": "1m", "startTime": str(since), "limit": str(PAGE)}
            async with session.get(f"{fake_url}/api/v3/klines", params=params) as response:
                klines = await response.json()
            rows = [k for k in klines if k[0] <= newest_closed]
            if not rows:
                break
            records = [
                (1, k[0] // 60_000, float(k[1]), float(k[2]), float(k[3]), float(k[4]), float(k[5])) for k in rows
            ]
            await conn.copy_records_to_table("candles_floor", records=records)
            stored += len(records)
            since = rows[-1][0] + 60_000
        elapsed = time.perf_counter() - began
        await conn.execute("DROP TABLE candles_floor")
    return elapsed, stored


async def _backfill(pool: Pool, url: str, fake_url: str, symbol: str) -> tuple[float, int]:
    """A year of 1m through the collector (ccxt, candle rules, the writer) into a new series."""
    overrides = {
        "binance": {
            "urls": {"api": {"public": f"{fake_url}/api/v3"}},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
            "rateLimit": CCXT_RATE_LIMIT_MS,
        }
    }
    settings = Settings(app_env="test", database_url=url, exchange_overrides=overrides)
    exchanges = ExchangeClients(overrides)
    try:
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=lambda: BACKFILL_NOW)
        await exchanges.get("binance").ensure_markets()
        config = await configs.create_config(
            pool,
            data=ConfigCreate(symbol=symbol, timeframes=["1m"], interval_minutes=10, backfill_days=BACKFILL_DAYS),
            created_by=None,
        )
        began = time.perf_counter()
        outcome = await collector.collect_now(config.id)
        return time.perf_counter() - began, outcome.records_collected if outcome else 0
    finally:
        await exchanges.close()


async def bench_backfill(pool: Pool, url: str, results: dict[str, Any]) -> None:
    """Each side ``REPEATS`` times, alternating; the best of each (each backfill into a new series)."""
    symbols = [f"BACK{k}/USDT" for k in range(REPEATS)]
    server, fake_url = await start_fake_binance([*symbols, "RAW/USDT"], BACKFILL_NOW)
    try:
        backfills, floors = [], []
        for symbol in symbols:
            backfills.append(await _backfill(pool, url, fake_url, symbol))
            floors.append(await _raw_floor(pool, fake_url))
        results["backfill"] = min(backfills)
        results["floor"] = min(floors)
    finally:
        server.terminate()
        await server.wait()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _report(results: dict[str, Any]) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    rows: list[tuple[str, str, str, str]] = []
    store_rate, bare_rate = results["store empty"]
    ratio = store_rate / bare_rate
    rows.append(
        (
            "store vs bare COPY, empty table",
            f"{store_rate:,.0f}/s vs {bare_rate:,.0f}/s: {ratio:.2f}x",
            ">= 0.5x",
            verdict(ratio >= 0.5),
        )
    )
    store_rate, bare_rate = results["store 10M"]
    ratio = store_rate / bare_rate
    rows.append(
        (
            "store vs bare COPY, 10M+ candles stored",
            f"{store_rate:,.0f}/s vs {bare_rate:,.0f}/s: {ratio:.2f}x",
            ">= 0.5x",
            verdict(ratio >= 0.5),
        )
    )
    if "backfill" in results:
        (seconds, candles), (floor, floor_candles) = results["backfill"], results["floor"]
        ratio = seconds / floor
        rows.append(
            (
                f"one-year 1m backfill via ccxt ({candles:,} candles)",
                f"{seconds:.1f} s vs raw floor {floor:.1f} s ({floor_candles:,}): {ratio:.2f}x",
                "<= 1.3x floor",
                verdict(ratio <= 1.3),
            )
        )
    # bytes per candle are MB (10^6 bytes) per million
    in_order, interleaved = results["bytes in order"], results["bytes interleaved"]
    rows.append(
        (
            "bytes per million candles (heap + indexes)",
            f"{in_order:.0f} MB in order, {interleaved:.0f} MB written by 20 series in turn",
            "<= 100 MB",
            verdict(max(in_order, interleaved) <= 100),
        )
    )
    if "ohlcv day" not in results:
        _print_table(rows)
        return
    long_p50, long_p95 = results["coverage long"]
    _, day_p95 = results["coverage day"]
    rows.append(
        (
            "/coverage, one symbol (HTTP)",
            f"p95 {long_p95:.1f} ms at 1M candles + ~100 gaps (p50 {long_p50:.1f}); p95 {day_p95:.1f} ms at one day",
            "p95 < 20 ms",
            verdict(max(long_p95, day_p95) < 20),
        )
    )
    p50, p95 = results["ohlcv day"]
    rows.append(
        (
            f"one day of a 1m series, /ohlcv limit 1440 (HTTP), {results['table candles'] / 1e6:.0f}M candles",
            f"p95 {p95:.1f} ms (p50 {p50:.1f})",
            "p95 < 5 ms (at 100M+: make bench-scale)",
            verdict(p95 < 5),
        )
    )
    if "compaction" in results:
        rows += _compaction_rows(results, verdict)
    _print_table(rows)


def _compaction_rows(results: dict[str, Any], verdict: Callable[[bool], str]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    open_month, month, everything = (
        results["bytes open month"],
        results["bytes compacted month"],
        results["bytes compacted all"],
    )
    rows.append(
        (
            "bytes per million candles, compacted month (heap + TOAST + key)",
            f"{month:.1f} MB ({month / open_month:.2f}x the open month's {open_month:.0f} MB); "
            f"{everything:.1f} MB over every compacted month",
            "<= 40 MB",
            verdict(month <= 40),
        )
    )
    seconds, compacted, partitions, load = results["compaction"]
    rows.append(
        (
            "compacting every closed month (the daily upkeep)",
            f"{compacted / 1e6:.1f}M candles, {partitions} partitions in {seconds:.0f} s "
            f"({compacted / seconds:,.0f}/s; {load})",
            "",
            "",
        )
    )
    _, p95_rows = results["ohlcv day"]
    p50, p95 = results["ohlcv day compacted"]
    _, market_p95 = results["ohlcv market day compacted"]
    rows.append(
        (
            "one day of a 1m series, /ohlcv limit 1440 (HTTP), compacted",
            f"p95 {p95:.1f} ms (p50 {p50:.1f}; {p95 / p95_rows:.2f}x the rows' p95); market-like month p95 "
            f"{market_p95:.1f} ms",
            "p95 < 5 ms",
            verdict(max(p95, market_p95) < 5),
        )
    )
    long_p50, long_p95 = results["coverage long compacted"]
    _, rows_p95 = results["coverage long"]
    rows.append(
        (
            "/coverage, one symbol (HTTP), compacted",
            f"p95 {long_p95:.1f} ms at 1M candles + ~100 gaps (p50 {long_p50:.1f}; {long_p95 / rows_p95:.2f}x the "
            "rows' p95)",
            "p95 < 20 ms",
            verdict(long_p95 < 20),
        )
    )
    return rows


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    rows = [("measure", "this run", "goal", ""), *rows]
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)))


async def main() -> None:
    print(f"start: {_load()}")
    results: dict[str, Any] = {}
    async with throwaway_database("altar_bench_storage") as url:
        pool = await create_pool(url, min_size=1, max_size=10)
        try:
            await bench_store(pool, results)
            print(
                f"(10M candles preloaded with generate_series in {results['preload']:.0f} s; re-storing 1M unchanged "
                f"candles through the merge: {results['restore unchanged']:,.0f}/s)"
            )
            await bench_interleaved(pool, results)
            await bench_backfill(pool, url, results)
            if shutil.which("hey") is None:
                print("HTTP figures skipped: the load tool 'hey' is missing (Debian: apt-get install hey)")
            else:
                await bench_http(pool, url, results)
                await bench_compaction(pool, url, results)
        finally:
            await pool.close()
    print(f"end: {_load()}")
    _report(results)
