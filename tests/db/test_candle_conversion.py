"""Migration 0006 converts candles stored by the text-keyed schema (0002) in place."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from backend.collection import repository
from backend.collection.repository import CandleQuery
from backend.collection.storage import store_candles
from backend.collection.timeframes import to_minute, to_ms
from backend.db.migrate import MIGRATIONS_DIR, apply_migrations
from backend.db.pool import Pool, create_pool

CONVERSION = "0006_compact_partitioned_candles.sql"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
START = datetime(2024, 12, 31, 20, tzinfo=UTC)  # the candles span two months and two years
# the candles and what the collector knew about their series, as the schema before 0006 held them
OLD_CANDLES = """
INSERT INTO candles (exchange, symbol, timeframe, open_time, open, high, low, close, volume)
SELECT 'binance', 'BTC/USDT', '1h', $1::timestamptz + h * interval '1 hour', 100 + h, 101 + h, 99 + h, 100.5 + h, 2.5
FROM generate_series(0, 47) AS h WHERE h NOT IN (5, 6, 30)
UNION ALL
SELECT 'binance', 'ETH/USDT', '1m', $1::timestamptz + m * interval '1 minute', 10, 11, 9, 10.5, 1
FROM generate_series(0, 599) AS m
UNION ALL
SELECT 'binance', 'ETH/USDT', '1m', $1::timestamptz + interval '1 minute 1.234 seconds', 10, 11, 9, 10.5, 1
"""
OLD_SERIES = """
INSERT INTO candle_series (exchange, symbol, timeframe, earliest_available) VALUES ('binance', 'BTC/USDT', '1h', $1)
"""
OLD_EMPTY_RANGE = """
INSERT INTO candle_empty_ranges (exchange, symbol, timeframe, range_start, range_end)
VALUES ('binance', 'BTC/USDT', '1h', $1::timestamptz + interval '5 hours', $1 + interval '7 hours')
"""


@pytest.fixture
async def converted(empty_database: str, tmp_path: Path) -> AsyncIterator[Pool]:
    """A database migrated up to 0006, holding candles written by the old schema, then migrated."""
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < CONVERSION:
            shutil.copy(path, before / path.name)
    await apply_migrations(empty_database, before)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(OLD_CANDLES, START)
        await conn.execute(OLD_SERIES, START - timedelta(days=30))
        await conn.execute(OLD_EMPTY_RANGE, START)
    finally:
        await conn.close()
    assert CONVERSION in await apply_migrations(empty_database)
    pool = await create_pool(empty_database)
    yield pool
    await pool.close()


async def test_every_whole_minute_candle_reads_back_with_its_values(converted: Pool) -> None:
    query = CandleQuery(exchange="binance", symbol="BTC/USDT", timeframe="1h", start=START, end=None, limit=100)

    rows = await repository.read_candles(converted, query)

    hours = [h for h in range(48) if h not in (5, 6, 30)]
    assert [row[0] for row in rows] == [to_ms(START + h * HOUR) for h in hours]
    assert tuple(rows[0])[1:] == (100.0, 101.0, 99.0, 100.5, 2.5)
    assert await converted.fetchval("SELECT count(*) FROM candles WHERE timeframe = '1m'") == 600


async def test_a_candle_off_the_minute_grid_is_left_out(converted: Pool) -> None:
    times = await converted.fetch("SELECT open_time FROM candles WHERE symbol = 'ETH/USDT' ORDER BY open_time")

    assert [row["open_time"] for row in times] == [START + m * MINUTE for m in range(600)]


async def test_the_summary_of_converted_series_matches_their_candles(converted: Pool) -> None:
    rows = {
        row["timeframe"]: row
        for row in await repository.coverage(converted, exchange="binance", symbol="BTC/USDT", largest_gaps=5)
    }

    hourly = rows["1h"]
    assert (hourly["candles"], hourly["first_minute"], hourly["last_minute"]) == (
        45,
        to_minute(START),
        to_minute(START + 47 * HOUR),
    )
    assert hourly["gap_count"] == 2
    assert [list(gap) for gap in hourly["largest_gaps"]] == [
        [to_minute(START + 4 * HOUR), to_minute(START + 7 * HOUR)],
        [to_minute(START + 29 * HOUR), to_minute(START + 31 * HOUR)],
    ]


async def test_what_was_known_of_each_series_is_kept(converted: Pool) -> None:
    series = await repository.open_series(converted, exchange="binance", symbol="BTC/USDT", timeframe="1h")
    holes = await repository.find_holes(
        converted,
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        since=START,
        confirmed_after=START - timedelta(days=1),
        limit=10,
    )

    assert series.earliest_available == START - timedelta(days=30)
    assert series.newest == START + 47 * HOUR
    assert series.id // 100_000_000 == 6  # the 1h block
    assert holes == [repository.Hole(start=START + 30 * HOUR, end=START + 31 * HOUR)]  # 5-6h is confirmed empty


async def test_the_old_table_is_gone_and_new_candles_append_after_the_converted_ones(converted: Pool) -> None:
    stored = await store_candles(
        converted,
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        rows=[(START + 48 * HOUR, 1.0, 2.0, 0.5, 1.5, 3.0)],
    )

    assert stored == 1
    assert await converted.fetchval("SELECT to_regclass('candles_before_0006')") is None
    assert await converted.fetchval("SELECT sum(candles) FROM candle_counts WHERE series_id / 100000000 = 6") == 46
