"""The coverage summary (counts per partition, gaps) always equals a recount from the candles."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from backend.collection import repository
from backend.collection.repository import CandleRow, StoredSeries
from backend.collection.storage import PartitionCache, SeriesWriter, store_candles
from backend.collection.timeframes import from_minute, to_minute
from backend.db.pool import Pool
from tests.collection.conftest import assert_summary_equals_recount

START = datetime(2024, 12, 28, tzinfo=UTC)  # the series crosses two month partitions
SPAN_MINUTES = 8 * 24 * 60


def _candle(minute: int, price: float = 100.0) -> CandleRow:
    return (from_minute(minute), price, price + 1, price - 1, price + 0.5, 2.0)


def _page(rng: random.Random, first: int, length: int, step: int) -> list[CandleRow]:
    """Candles from ``first`` on, some missing (no trades), some with other prices."""
    minutes = [first + i * step for i in range(length) if rng.random() > 0.1]
    return [_candle(m, 100.0 + rng.choice((0, 0, 0, 1))) for m in minutes]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_summary_equals_a_recount_after_any_mix_of_appends_merges_and_deletes(pool: Pool, seed: int) -> None:
    rng = random.Random(seed)
    series = await repository.open_series(pool, exchange="binance", symbol="SUM/USDT", timeframe="1m")
    partitions = PartitionCache(pool)
    origin = to_minute(START)
    newest = origin
    for _ in range(40):
        action = rng.choice(("append", "append", "merge", "merge", "delete"))
        if action == "append":
            newest += rng.choice((1, 1, 30))
            page = _page(rng, newest, rng.randint(1, 400), 1)
            if page:
                newest = to_minute(page[-1][0])
        elif action == "merge":
            page = _page(rng, origin + rng.randint(-300, SPAN_MINUTES), rng.randint(1, 600), 1)
        else:
            low = origin + rng.randint(0, SPAN_MINUTES)
            await pool.execute(
                "DELETE FROM candle_data WHERE series_id = $1 AND open_minute BETWEEN $2 AND $3",
                series.id,
                low,
                low + rng.randint(0, 200),
            )
            page = []
        if page:
            async with SeriesWriter(pool, series, partitions) as writer:
                await writer.store(page, more_coming=rng.random() < 0.5)
        await assert_summary_equals_recount(pool, series.id, 1)


async def test_pages_sharing_a_transaction_keep_the_summary_exact(pool: Pool) -> None:
    series = await repository.open_series(pool, exchange="binance", symbol="SUM/USDT", timeframe="1h")
    origin = to_minute(START)
    pages = [[_candle(origin + h * 60) for h in range(first, first + 10) if h % 7] for first in range(0, 500, 10)]

    async with SeriesWriter(pool, series, PartitionCache(pool)) as writer:
        for page in pages:
            await writer.store(page, more_coming=True)
        await writer.store([_candle(origin + 7 * 60)], more_coming=True)  # fills a hole: a merge

    await assert_summary_equals_recount(pool, series.id, 60)


async def test_monthly_candles_have_gaps_only_where_a_month_is_missing(pool: Pool) -> None:
    months = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 3, 5, 6, 9)]
    await store_candles(
        pool,
        exchange="binance",
        symbol="SUM/USDT",
        timeframe="1M",
        rows=[(month, 1.0, 2.0, 0.5, 1.5, 3.0) for month in months],
    )

    gaps = await pool.fetch("SELECT after_minute, next_minute FROM candle_gaps ORDER BY after_minute")

    assert [(from_minute(g["after_minute"]), from_minute(g["next_minute"])) for g in gaps] == [
        (months[2], months[3]),
        (months[4], months[5]),
    ]


async def test_a_recount_rebuilds_the_summary_of_candles_loaded_by_hand(pool: Pool) -> None:
    series: StoredSeries = await repository.open_series(pool, exchange="binance", symbol="SUM/USDT", timeframe="1m")
    origin = to_minute(START)
    await pool.execute("SELECT create_candle_partitions('1m', $1, $2)", origin, origin + 1000)
    await pool.execute(
        "INSERT INTO candle_data SELECT $1, m, 1, 2, 0.5, 1.5, 3 FROM generate_series($2::integer, $2 + 1000, 2) AS m",
        series.id,
        origin,
    )

    await pool.execute("SELECT recount_candle_series($1)", series.id)

    await assert_summary_equals_recount(pool, series.id, 1)
    assert await pool.fetchval("SELECT sum(candles) FROM candle_counts") == 501
