"""Reading a day (and an hour) of a 1m series from a compacted month, next to the same candles as rows.

Twin series: for each of ``TWINS`` markets, two series get the same market-like month of candles
(``bench_storage``'s random walk on a 0.01 tick, volumes in lots of 0.00001), stored by the writer
into a closed month. The daily upkeep compacts the month; then one twin's segments are turned back
into rows (as candles written into a compacted period are stored), so both twins answer the same
candles, one from its segments, one from rows.

- ``/ohlcv`` through HTTP (the app served by uvicorn, one client on one kept-alive connection):
  ``REQUESTS`` random (market, day) pairs, each read from both twins one after the other (which one
  first alternates), so that both sides meet the same machine load; p50 and p95 of each side. The
  two answers are compared byte for byte. The same for an hour starting at a random minute.
- the read in the process (``read_candles`` and the JSON encoding of its answer), CPU time per
  request, p50 and p95 of the same pairs: the part of the time the load on the machine does not
  change much.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.collection import repository
from backend.collection.compaction import compact_closed_partitions
from backend.collection.repository import CandleQuery
from backend.collection.storage import PartitionCache, SeriesWriter
from backend.db.pool import Pool, create_pool
from tests.bench.bench_storage import MARKET_DAYS, MARKET_START, _market_pages
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

TWINS = 4
REQUESTS = 400
HOUR = 60
EXPAND = "SELECT expand_candle_segment(series_id, segment_start) FROM candle_segments WHERE series_id = ANY($1)"

Read = tuple[str, datetime, int]  # symbol, start, limit


async def _twin_month(pool: Pool) -> None:
    """Each market's month stored twice, compacted, and one twin's segments back into rows."""
    row_twins = []
    for k in range(TWINS):
        for symbol in (f"SEG{k}/USDT", f"ROWS{k}/USDT"):
            series = await repository.open_series(pool, exchange="binance", symbol=symbol, timeframe="1m")
            async with SeriesWriter(pool, series, PartitionCache(pool)) as writer:
                for page in _market_pages(random.Random(k)):
                    await writer.store(page, more_coming=True)
        row_twins.append(series.id)
    await compact_closed_partitions(pool, now=datetime.now(UTC))
    await pool.execute(EXPAND, row_twins)
    await pool.execute("VACUUM ANALYZE candle_data")
    await pool.execute("ANALYZE candle_segments")


def _pairs(rng: random.Random, limit: int) -> list[tuple[Read, Read]]:
    """``REQUESTS`` random reads of ``limit`` candles, each as (compacted, rows) of one market."""
    pairs = []
    for _ in range(REQUESTS):
        k = rng.randrange(TWINS)
        if limit == HOUR:
            start = MARKET_START + timedelta(minutes=rng.randrange((MARKET_DAYS * 1440) - HOUR))
        else:
            start = MARKET_START + timedelta(days=rng.randrange(MARKET_DAYS))
        pairs.append(((f"SEG{k}/USDT", start, limit), (f"ROWS{k}/USDT", start, limit)))
    return pairs


def _http_latencies(base: str, token: str, pairs: list[tuple[Read, Read]]) -> tuple[list[float], list[float]]:
    """Milliseconds per request of each side, over one kept-alive connection; answers compared."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port)
    headers = {"Authorization": f"Bearer {token}"}

    def get(read: Read) -> tuple[float, bytes]:
        symbol, start, limit = read
        params = {"symbol": symbol, "timeframe": "1m", "limit": limit, "start": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
        began = time.perf_counter()
        connection.request("GET", "/api/v1/market-data/ohlcv?" + urlencode(params), headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        if response.status != 200:
            raise RuntimeError(f"{symbol} answered {response.status}")
        return elapsed, body

    compacted, rows = [], []
    try:
        for n, (segment_read, row_read) in enumerate(pairs):
            first, second = (segment_read, row_read) if n % 2 == 0 else (row_read, segment_read)
            (first_ms, first_body), (second_ms, second_body) = get(first), get(second)
            if first_body != second_body:
                raise RuntimeError(f"{segment_read} and {row_read} answered different candles")
            compacted.append(first_ms if n % 2 == 0 else second_ms)
            rows.append(second_ms if n % 2 == 0 else first_ms)
    finally:
        connection.close()
    return compacted, rows


async def _cpu_per_read(pool: Pool, pairs: list[tuple[Read, Read]]) -> tuple[list[float], list[float]]:
    """CPU milliseconds of ``read_candles`` and the JSON encoding of its answer, per side."""
    encoder = msgspec.json.Encoder()
    sides: tuple[list[float], list[float]] = ([], [])
    for pair in pairs:
        for side, (symbol, start, limit) in zip(sides, pair, strict=True):
            query = CandleQuery(exchange="binance", symbol=symbol, timeframe="1m", start=start, end=None, limit=limit)
            began = time.process_time()
            encoder.encode(await repository.read_candles(pool, query))
            side.append((time.process_time() - began) * 1000)
    return sides


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return f"p50 {ordered[len(ordered) // 2]:.2f} ms, p95 {ordered[int(len(ordered) * 0.95)]:.2f} ms"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def _print(what: str, measure: Callable[[], tuple[list[float], list[float]]] | tuple[list[float], list[float]]) -> None:
    compacted, rows = measure() if callable(measure) else measure
    print(f"  {what}: compacted {_percentiles(compacted)}; as rows {_percentiles(rows)}")


async def main() -> None:
    rng = random.Random(7)
    days, hours = _pairs(rng, 1440), _pairs(rng, HOUR)
    async with throwaway_database("altar_bench_compacted_reads") as url:
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            await _twin_month(pool)
            await users.create_user(pool, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
            results: dict[str, Any] = {}
            for name, pairs in (("day", days), ("hour", hours)):
                await _cpu_per_read(pool, pairs[:20])  # statements prepared, pages cached
                results[name] = await _cpu_per_read(pool, pairs)
            process, base = await serve(url)
            try:
                token = await login(base)
                print(f"start: {_load()}")
                for name, pairs in (("day", days), ("hour", hours)):
                    await asyncio.to_thread(_http_latencies, base, token, pairs[:20])
                    results[f"http {name}"] = await asyncio.to_thread(_http_latencies, base, token, pairs)
                print(f"end: {_load()}")
            finally:
                process.terminate()
                process.wait(timeout=30)
        finally:
            await pool.close()
    print(f"{REQUESTS} random (market, day) and (market, hour) reads of a 1m series, {TWINS} markets' closed month:")
    _print("one day, /ohlcv limit 1440 (HTTP)", results["http day"])
    _print("one hour, /ohlcv limit 60 (HTTP)", results["http hour"])
    _print("one day, read and JSON in the process (CPU)", results["day"])
    _print("one hour, read and JSON in the process (CPU)", results["hour"])
