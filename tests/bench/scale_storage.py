"""Candle storage at 100M candles (``make bench-scale``): reads, coverage, size, compaction, retention.

The load and the reads of rows take 6.5 minutes on a quiet 2-core machine (load average about 1),
longer on a busy one; compacting January then takes as long again or more (see what it prints);
the database grows to about 10 GB.

Loads 100,000,000 1m candles (50,000,000 when the database's disk has less than 30 GB free, and
says so) for 1,000 series with generate_series, as the collector would have written them: in
runs of ten minutes per series, series after series (so one day of a series is spread over
about 144 heap pages, not packed together); every tenth series misses one candle in 997. Then,
through HTTP (the app served by uvicorn, one client, random series and days):

- one day of a 1m series (``/ohlcv``, limit 1440): p50 and p95;
- ``/coverage`` of a symbol: p95;
- the size per million candles (heap + indexes), and of the summary;
- January's partition compacted by the daily upkeep's code (its time, the segments' size), and the
  same reads again on random days of January;
- the time to drop one month's partitions (detached concurrently, dropped, its summary forgotten).

The database is a throwaway one, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta

import aiohttp

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.collection import repository
from backend.collection.compaction import closed_partitions, compact_partition
from backend.collection.partitions import drop_expired_partitions
from backend.collection.repository import CandleQuery
from backend.collection.timeframes import to_minute
from backend.db.pool import Pool, create_pool
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database
from tests.collection.conftest import assert_summary_equals_recount

SERIES = 1000
CANDLES = 100_000_000
SHORT_DISK_CANDLES = 50_000_000
DISK_NEEDED_BYTES = 30e9  # 100M candles take ~10 GB, plus WAL and headroom
START = datetime(2025, 1, 1, tzinfo=UTC)
RUN_MINUTES = 10  # candles per series per run, as a config with a 10-minute interval stores them
HOLEY_EVERY_SERIES = 10
HOLE_EVERY_MINUTES = 997
LOAD_CHUNK_DAYS = 2
REQUESTS = 500
JANUARY = "candle_data_1m_2025_01"
JANUARY_SEGMENTS = "candle_segments_1m_2025_01"
MB = 1e6

CREATE_SERIES = """
INSERT INTO candle_series (id, exchange, symbol, timeframe)
SELECT 100000000 + nextval('candle_series_number'), 'binance', 'S' || n || '/USDT', '1m'
FROM generate_series(1, $1) AS n
"""
# minutes [$1, $2) of every series, written ten minutes of a series at a time (the heap order a
# 10-minute interval gives); series whose id is a multiple of ten miss one candle in 997
LOAD = f"""
INSERT INTO {{table}} (series_id, open_minute, open, high, low, close, volume)
SELECT s.id, r.run + k, 100 + (r.run + k) % 97 * 0.01, 101 + (r.run + k) % 89 * 0.01,
       99 - (r.run + k) % 83 * 0.01, 100 + (r.run + k) % 79 * 0.01, 1 + (r.run + k) % 5
FROM generate_series($1::integer, $2 - 1, {RUN_MINUTES}) AS r(run)
CROSS JOIN (SELECT id FROM candle_series ORDER BY id) AS s
CROSS JOIN generate_series(0, {RUN_MINUTES - 1}) AS k
WHERE r.run + k < $2 AND (s.id % {HOLEY_EVERY_SERIES} <> 0 OR (r.run + k) % {HOLE_EVERY_MINUTES} <> 0)
ORDER BY r.run, s.id, k
"""
# a partition out of candle_data while it is loaded: no index, a CHECK that will let ATTACH skip its scan
DETACH_AND_UNINDEX = """
SELECT unnest(ARRAY[
    format('ALTER TABLE candle_data_1m DETACH PARTITION %I', $1::text),
    format('ALTER TABLE %I DROP CONSTRAINT %I', $1::text, $1::text || '_pkey'),
    format('ALTER TABLE %I ADD CONSTRAINT in_period CHECK (series_id >= 100000000 AND series_id < 200000000 '
           'AND open_minute >= %s AND open_minute < %s)', $1::text, $2::integer, $3::integer)
]) AS ddl
"""
INDEX_AND_ATTACH = """
SELECT unnest(ARRAY[
    format('ALTER TABLE %I ADD PRIMARY KEY (series_id, open_minute) WITH (fillfactor = 100)', $1::text),
    format('ALTER TABLE candle_data_1m ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
           $1::text, $2::integer, $3::integer),
    format('ALTER TABLE %I DROP CONSTRAINT in_period', $1::text)
]) AS ddl
"""
# the summary of what LOAD wrote for minutes [$1, $2), counted from how it was generated: per series
# and partition, the minutes [a, b) it covers less the holes (multiples of 997, never two in a row)
SUMMARY_COUNTS = f"""
INSERT INTO candle_counts (series_id, period_start, candles, first_minute, last_minute)
SELECT s.id, p.period_start,
       (x.b - x.a) - CASE WHEN x.holey THEN x.b_holes - x.a_holes ELSE 0 END,
       CASE WHEN x.holey AND x.a % {HOLE_EVERY_MINUTES} = 0 THEN x.a + 1 ELSE x.a END,
       CASE WHEN x.holey AND (x.b - 1) % {HOLE_EVERY_MINUTES} = 0 THEN x.b - 2 ELSE x.b - 1 END
FROM candle_series AS s
JOIN candle_partitions AS p ON p.timeframe = '1m' AND p.period_start < $2 AND p.period_end > $1
CROSS JOIN LATERAL (
    SELECT greatest($1, p.period_start) AS a, least($2, p.period_end) AS b, s.id % {HOLEY_EVERY_SERIES} = 0 AS holey,
           (greatest($1, p.period_start) - 1) / {HOLE_EVERY_MINUTES} AS a_holes,
           (least($2, p.period_end) - 1) / {HOLE_EVERY_MINUTES} AS b_holes
) AS x
"""
SUMMARY_GAPS = f"""
INSERT INTO candle_gaps (series_id, after_minute, next_minute)
SELECT s.id, h - 1, h + 1
FROM candle_series AS s
CROSS JOIN generate_series($1 + 1, $2 - 2) AS h
WHERE s.id % {HOLEY_EVERY_SERIES} = 0 AND h % {HOLE_EVERY_MINUTES} = 0
"""
SIZES = """
SELECT coalesce(sum(pg_relation_size(partition_name::regclass)), 0)::float8 AS heap,
       coalesce(sum(pg_indexes_size(partition_name::regclass)), 0)::float8 AS indexes,
       (pg_total_relation_size('candle_counts') + pg_total_relation_size('candle_gaps'))::float8 AS summary
FROM candle_partitions
"""


def _load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


async def _free_disk(pool: Pool) -> float:
    """Free bytes where the database keeps its files (the working directory's disk if unreadable)."""
    try:
        directory = await pool.fetchval("SHOW data_directory")
        return shutil.disk_usage(directory).free
    except Exception:
        return shutil.disk_usage(".").free


async def _load(pool: Pool, candles: int) -> tuple[int, int]:
    """Series and candles; returns the minutes loaded [first, end).

    Each month's partition is detached while it is filled and gets its primary key afterwards
    (one sort instead of 100M index insertions); a CHECK constraint lets ATTACH skip its scan.
    """
    per_series = candles // SERIES
    first = to_minute(START)
    end = first + per_series
    await pool.execute(CREATE_SERIES, SERIES)
    partitions = await pool.fetch(
        "SELECT partition_name, period_start, period_end FROM create_candle_partitions('1m', $1, $2)", first, end - 1
    )
    began = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET work_mem = '256MB'")  # LOAD sorts a chunk in memory
        for partition in partitions:
            name, low, high = partition["partition_name"], partition["period_start"], partition["period_end"]
            for statement in await conn.fetch(DETACH_AND_UNINDEX, name, low, high):
                await conn.execute(statement["ddl"])
            chunk = LOAD_CHUNK_DAYS * 1440
            for chunk_low in range(max(low, first), min(high, end), chunk):
                await conn.execute(LOAD.format(table=name), chunk_low, min(chunk_low + chunk, high, end))
                loaded = min(chunk_low + chunk, high, end) - first
                print(
                    f"  loaded {loaded * SERIES / 1e6:5.0f}M candles in {time.perf_counter() - began:4.0f} s",
                    flush=True,
                )
            for statement in await conn.fetch(INDEX_AND_ATTACH, name, low, high):
                await conn.execute(statement["ddl"])
            print(f"  {name}: primary key built and attached at {time.perf_counter() - began:4.0f} s", flush=True)
    await pool.execute(SUMMARY_COUNTS, first, end)
    await pool.execute(SUMMARY_GAPS, first, end)
    await pool.execute("ANALYZE candle_data")
    print(f"  summary written, ANALYZE done: {time.perf_counter() - began:.0f} s in all; {_load_average()}")
    return first, end


async def _timed_reads(pool: Pool, queries: list[CandleQuery]) -> tuple[float, float]:
    """The same reads without HTTP: the repository's queries alone."""
    times = []
    for query in queries:
        began = time.perf_counter()
        await repository.read_candles(pool, query)
        times.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94]


async def _timed_gets(base: str, token: str, urls: list[str]) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    async with aiohttp.ClientSession() as session:
        for url in urls:
            began = time.perf_counter()
            async with session.get(base + url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status}")
            times.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94]


async def _reads(pool: Pool, url: str, picks: list[tuple[int, datetime]], rng: random.Random) -> dict[str, float]:
    """One day of random series and days: the repository's reads alone (twice), then through HTTP;
    /coverage of random symbols through HTTP."""
    queries = [
        CandleQuery(exchange="binance", symbol=f"S{n}/USDT", timeframe="1m", start=day, end=None, limit=1440)
        for n, day in picks
    ]
    figures: dict[str, float] = {}
    figures["sql p50"], figures["sql p95"] = await _timed_reads(pool, queries)
    _, figures["cached p95"] = await _timed_reads(pool, queries)  # the same days again: in memory now
    process, base = await serve(url)
    try:
        token = await login(base)
        reads = [
            f"/api/v1/market-data/ohlcv?symbol=S{n}/USDT&timeframe=1m&limit=1440"
            f"&start={day.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            for n, day in rng.sample(picks, len(picks))
        ]
        figures["read p50"], figures["read p95"] = await _timed_gets(base, token, reads)
        symbols = [f"/api/v1/market-data/coverage?symbol=S{rng.randint(1, SERIES)}/USDT" for _ in range(REQUESTS)]
        figures["coverage p50"], figures["coverage p95"] = await _timed_gets(base, token, symbols)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return figures


async def _compact_january(pool: Pool) -> dict[str, float]:
    """The daily upkeep's compaction of January's partition; its time, candles and size."""
    (january,) = [
        partition
        for partition in await closed_partitions(pool, before=datetime.now(UTC))
        if partition["partition_name"] == JANUARY
    ]
    began = time.perf_counter()
    await compact_partition(pool, january)
    seconds = time.perf_counter() - began
    await pool.execute("ANALYZE candle_segments")
    return {
        "seconds": seconds,
        "candles": await pool.fetchval("SELECT sum(candles)::float8 FROM candle_segments"),
        "bytes": await pool.fetchval(f"SELECT pg_total_relation_size('{JANUARY_SEGMENTS}')::float8"),
        "rows left": await pool.fetchval(f"SELECT pg_total_relation_size('{JANUARY}')::float8"),
    }


async def main() -> None:
    print(f"start: {_load_average()}")
    async with throwaway_database("altar_bench_scale") as url:
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            free = await _free_disk(pool)
            candles = CANDLES if free >= DISK_NEEDED_BYTES else SHORT_DISK_CANDLES
            if candles < CANDLES:
                print(
                    f"the database's disk has {free / 1e9:.0f} GB free (< {DISK_NEEDED_BYTES / 1e9:.0f} GB): "
                    f"loading {candles / 1e6:.0f}M candles instead of {CANDLES / 1e6:.0f}M"
                )
            print(f"loading {candles / 1e6:.0f}M candles for {SERIES} 1m series ({free / 1e9:.0f} GB free):")
            first, end = await _load(pool, candles)
            rng = random.Random(11)
            checked = rng.sample(range(100000001, 100000001 + SERIES), 3)
            for series_id in checked:
                await assert_summary_equals_recount(pool, series_id, 1)
            stored = await pool.fetchval("SELECT sum(candles)::float8 FROM candle_counts")
            sizes = await pool.fetchrow(SIZES)
            await users.create_user(pool, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
            days = (end - first) // 1440
            picks = [(rng.randint(1, SERIES), START + timedelta(days=rng.randrange(days))) for _ in range(REQUESTS)]
            rows = await _reads(pool, url, picks, rng)
            print(f"  reads of rows done; compacting January: {_load_average()}", flush=True)
            compacted = await _compact_january(pool)
            for series_id in checked:
                await assert_summary_equals_recount(pool, series_id, 1)
            january_picks = [
                (rng.randint(1, SERIES), START + timedelta(days=rng.randrange(31))) for _ in range(REQUESTS)
            ]
            segments = await _reads(pool, url, january_picks, rng)
            began = time.perf_counter()
            dropped = await drop_expired_partitions(pool, timeframe="1m", before=START + timedelta(days=31))
            drop_seconds = time.perf_counter() - began
            left = await pool.fetchval("SELECT coalesce(sum(candles), 0)::float8 FROM candle_counts")
        finally:
            await pool.close()
    per_million = (sizes["heap"] + sizes["indexes"]) / (stored / 1e6)
    print(f"end: {_load_average()}")
    print(f"{stored / 1e6:.1f}M candles, {SERIES} series, {(end - first) / 1440:.0f} days of 1m each:")
    _print_reads("rows", rows)
    print(
        f"  size: heap {sizes['heap'] / MB:,.0f} MB + indexes {sizes['indexes'] / MB:,.0f} MB = "
        f"{per_million / MB:.1f} MB per million candles (goal <= 100); summary {sizes['summary'] / MB:.1f} MB"
    )
    print(
        f"  compacting January ({compacted['candles'] / 1e6:.1f}M candles): {compacted['seconds']:.0f} s "
        f"({compacted['candles'] / compacted['seconds']:,.0f} candles/s); its segments "
        f"{compacted['bytes'] / MB:,.0f} MB = {compacted['bytes'] / (compacted['candles'] / 1e6) / MB:.1f} MB per "
        f"million (these generated prices repeat: market-like candles take more, see make bench); its row "
        f"partition then {compacted['rows left'] / MB:.1f} MB"
    )
    _print_reads("compacted January", segments)
    print(
        f"  dropping one month's partitions ({', '.join(dropped)}, {(stored - left) / 1e6:.1f}M candles): "
        f"{drop_seconds:.2f} s"
    )
    index_per_candle = sizes["indexes"] / stored
    month = SERIES * 43_200  # candles of a 30-day month
    print(
        f"  at 525.6M candles (a year of {SERIES} 1m series) as rows: {525.6 * per_million / 1e9:.0f} GB on disk, of "
        f"which {525.6e6 * index_per_candle / 1e9:.1f} GB primary keys; the current month's ({month / 1e6:.1f}M "
        f"candles, where every write and most reads land): {month * index_per_candle / 1e9:.2f} GB of index, "
        f"{month * sizes['heap'] / stored / 1e9:.1f} GB of heap"
    )


def _print_reads(storage: str, figures: dict[str, float]) -> None:
    print(
        f"  one day of a 1m series, {storage} (/ohlcv limit 1440, HTTP, random series and day): "
        f"p50 {figures['read p50']:.1f} ms, p95 {figures['read p95']:.1f} ms (goal p95 < 5 ms); the repository's "
        f"reads alone p50 {figures['sql p50']:.1f} ms, p95 {figures['sql p95']:.1f} ms (the same days again, "
        f"cached: p95 {figures['cached p95']:.1f} ms)"
    )
    print(
        f"  /coverage of a symbol, {storage} (HTTP, random): p50 {figures['coverage p50']:.1f} ms, "
        f"p95 {figures['coverage p95']:.1f} ms (goal < 20 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
