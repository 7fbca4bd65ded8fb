"""Compacted periods: the same candles, bit for bit, for every reader and writer, in a fraction of the space."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection import compaction, repository
from backend.collection.compaction import compact_closed_partitions
from backend.collection.partitions import keep_partitions
from backend.collection.repository import CandleQuery, CandleRow
from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.scheduling.retention import retain_logs
from tests.collection.conftest import assert_summary_equals_recount

JANUARY = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 3, 15, 12, tzinfo=UTC)  # January and February closed long enough ago
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
# candles missing from what is stored: holes the summary keeps
MISSING = {5, 6, 7, 1500, 2999}
SERIES_ROWS = "SELECT count(*) FROM candle_data WHERE series_id = $1"
SEGMENTS = "SELECT count(*) FROM candle_segments WHERE series_id = $1"


def _values(m: int) -> tuple[float, float, float, float, float]:
    """Decimals as an exchange sends them, and a few values that are not short decimals at all."""
    if m == 100:
        return (0.1 + 0.2, 1.0, 0.25, 0.5, -0.0)
    if m == 200:
        return (1e300, 1e300, 1e300, 1e300, 5e-324)
    cents = 6_000_000 + m * 37 % 1001  # a price as its decimal text parses: a whole number of cents over 100
    return (
        cents / 100,
        (cents + m % 13) / 100,
        (cents - m % 7) / 100,
        (cents + m % 5 - 2) / 100,
        m * 7919 % 100_000 / 1e5,
    )


def _candles(first: int, count: int, start: datetime = JANUARY) -> list[CandleRow]:
    return [(start + m * MINUTE, *_values(m)) for m in range(first, first + count) if m not in MISSING]


async def _store(pool: Pool, rows: list[CandleRow], symbol: str = "BTC/USDT") -> int:
    return await store_candles(pool, exchange="binance", symbol=symbol, timeframe="1m", rows=rows)


async def _series_id(pool: Pool, symbol: str = "BTC/USDT") -> int:
    series_id: int = await pool.fetchval("SELECT id FROM candle_series WHERE symbol = $1 AND timeframe = '1m'", symbol)
    return series_id


async def _read(
    pool: Pool, start: datetime | None, end: datetime | None, limit: int = 5000
) -> list[tuple[object, ...]]:
    query = CandleQuery(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=start, end=end, limit=limit)
    return list(await repository.read_candles(pool, query))


def _bits(rows: list[tuple[object, ...]]) -> list[bytes]:
    return [struct.pack("<q5d", *row) for row in rows]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def _expected(first: int, count: int, start: datetime = JANUARY) -> list[tuple[object, ...]]:
    return [(_ms(row[0]), *row[1:]) for row in _candles(first, count, start)]


async def _view(pool: Pool) -> list[bytes]:
    rows = await pool.fetch(
        "SELECT open_minute::int8 * 60000, open, high, low, close, volume FROM candles ORDER BY open_minute"
    )
    return _bits([tuple(row) for row in rows])


@pytest.fixture
async def compacted(pool: Pool) -> int:
    """Three days of January (with holes) and one of February, compacted; the series id."""
    await _store(pool, _candles(0, 3 * 1440))
    await _store(pool, _candles(0, 1440, start=JANUARY + 31 * DAY))
    await compact_closed_partitions(pool, now=NOW)
    return await _series_id(pool)


async def test_compacted_candles_read_back_bit_for_bit(pool: Pool, compacted: int) -> None:
    rows = await _read(pool, JANUARY, None)

    everything = _expected(0, 3 * 1440) + _expected(0, 1440, JANUARY + 31 * DAY)
    assert _bits(rows) == _bits(everything[:5000])


async def test_a_compacted_month_leaves_its_partition_empty_and_one_segment_per_day(pool: Pool, compacted: int) -> None:
    assert await pool.fetchval(SERIES_ROWS, compacted) == 0
    assert await pool.fetchval(SEGMENTS, compacted) == 4
    assert await pool.fetchval("SELECT pg_relation_size('candle_data_1m_2025_01')") == 0


async def test_the_view_shows_the_same_candles_after_compaction(pool: Pool) -> None:
    await _store(pool, _candles(0, 2 * 1440))
    before = await _view(pool)

    await compact_closed_partitions(pool, now=NOW)

    assert await _view(pool) == before


async def test_a_day_is_read_from_any_minute_and_the_newest_before_an_end(pool: Pool, compacted: int) -> None:
    everything = _expected(0, 3 * 1440)
    noon, end = JANUARY + 12 * 60 * MINUTE, JANUARY + 2 * DAY + 60 * MINUTE

    from_noon = await _read(pool, noon, None, limit=1440)
    newest = await _read(pool, None, end, limit=100)

    at_noon = next(i for i, row in enumerate(everything) if row[0] == _ms(noon))
    at_end = next(i for i, row in enumerate(everything) if row[0] == _ms(end))
    assert _bits(from_noon) == _bits(everything[at_noon : at_noon + 1440])
    assert _bits(newest) == _bits(everything[at_end - 100 : at_end])


async def test_the_summary_and_the_holes_equal_a_recount_after_compaction(pool: Pool, compacted: int) -> None:
    holes = await repository.find_holes(
        pool, exchange="binance", symbol="BTC/USDT", timeframe="1m", since=JANUARY, confirmed_after=NOW, limit=10
    )

    await assert_summary_equals_recount(pool, compacted, 1)
    assert [(hole.start, hole.end) for hole in holes] == [
        (JANUARY + 5 * MINUTE, JANUARY + 8 * MINUTE),
        (JANUARY + 1500 * MINUTE, JANUARY + 1501 * MINUTE),
        (JANUARY + 2999 * MINUTE, JANUARY + 3000 * MINUTE),
        (JANUARY + 3 * DAY, JANUARY + 31 * DAY),
        (JANUARY + 31 * DAY + 5 * MINUTE, JANUARY + 31 * DAY + 8 * MINUTE),
    ]


async def test_a_changed_candle_written_into_a_compacted_period_replaces_the_compacted_one(
    pool: Pool, compacted: int
) -> None:
    revised = [(JANUARY + 10 * MINUTE, 1.5, 2.5, 1.25, 2.0, 7.0)]

    assert await _store(pool, revised) == 1

    rows = await _read(pool, JANUARY + 10 * MINUTE, None, limit=1)
    assert rows == [(_ms(revised[0][0]), 1.5, 2.5, 1.25, 2.0, 7.0)]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM candles WHERE series_id = $1 AND open_minute = $2", compacted, rows[0][0] // 60_000
        )
        == 1
    )
    await assert_summary_equals_recount(pool, compacted, 1)


async def test_the_same_candles_stored_again_into_a_compacted_period_change_nothing(pool: Pool, compacted: int) -> None:
    assert await _store(pool, _candles(0, 1000)) == 0

    assert await pool.fetchval(SERIES_ROWS, compacted) == 0


async def test_a_hole_filled_in_a_compacted_period_is_counted(pool: Pool, compacted: int) -> None:
    filled = [(JANUARY + m * MINUTE, *_values(m)) for m in (5, 6, 7)]

    assert await _store(pool, filled) == 3

    await assert_summary_equals_recount(pool, compacted, 1)
    assert len(await _read(pool, JANUARY, JANUARY + DAY)) == 1440


async def test_the_next_compaction_folds_in_what_was_written_since(pool: Pool, compacted: int) -> None:
    await _store(pool, [(JANUARY + m * MINUTE, *_values(m)) for m in (5, 6, 7)])
    await _store(pool, [(JANUARY + 10 * MINUTE, 1.5, 2.5, 1.25, 2.0, 7.0)])
    before = await _view(pool)

    emptied = await compact_closed_partitions(pool, now=NOW)

    assert emptied == ["candle_data_1m_2025_01"]
    assert await pool.fetchval(SERIES_ROWS, compacted) == 0
    assert await _view(pool) == before
    await assert_summary_equals_recount(pool, compacted, 1)


async def test_older_history_written_before_a_compacted_month_is_stored_and_counted(pool: Pool, compacted: int) -> None:
    older = [(JANUARY - DAY + m * MINUTE, 100.0, 101.0, 99.0, 100.5, 1.0) for m in range(1440)]

    assert await _store(pool, older) == 1440

    await assert_summary_equals_recount(pool, compacted, 1)
    assert len(await _read(pool, JANUARY - DAY, JANUARY + DAY)) == 2 * 1440 - 3


async def test_periods_closed_only_days_ago_and_the_open_month_stay_rows(pool: Pool) -> None:
    await _store(pool, _candles(0, 1440, start=datetime(2025, 2, 27, tzinfo=UTC)))
    await _store(pool, _candles(0, 1440, start=datetime(2025, 3, 1, tzinfo=UTC)))

    emptied = await compact_closed_partitions(pool, now=datetime(2025, 3, 3, 12, tzinfo=UTC))

    assert emptied == []
    assert await pool.fetchval("SELECT count(*) FROM candle_segments") == 0


async def test_deleting_a_compacted_candle_through_the_view_deletes_only_it(pool: Pool, compacted: int) -> None:
    minute = _ms(JANUARY + 10 * MINUTE) // 60_000

    await pool.execute("DELETE FROM candles WHERE series_id = $1 AND open_minute = $2", compacted, minute)

    times = [row[0] // 60_000 for row in await _read(pool, JANUARY, JANUARY + DAY)]
    assert minute not in times
    assert len(times) == 1440 - 4
    await assert_summary_equals_recount(pool, compacted, 1)


async def test_retention_drops_compacted_periods_whole(pool: Pool, compacted: int) -> None:
    upkeep = await keep_partitions(pool, retention_days={"1m": 30}, now=NOW)

    assert {"candle_data_1m_2025_01", "candle_segments_1m_2025_01"} <= set(upkeep.dropped)
    assert await pool.fetchval("SELECT to_regclass('candle_segments_1m_2025_01')") is None
    assert len(await _read(pool, JANUARY, None)) == 1440 - 3
    await assert_summary_equals_recount(pool, compacted, 1)


async def test_two_compactions_at_once_keep_every_candle_once(pool: Pool) -> None:
    await _store(pool, _candles(0, 2 * 1440))
    await _store(pool, _candles(0, 2 * 1440), symbol="ETH/USDT")
    before = await _view(pool)

    await asyncio.gather(compact_closed_partitions(pool, now=NOW), compact_closed_partitions(pool, now=NOW))

    assert await _view(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM candle_data") == 0
    for symbol in ("BTC/USDT", "ETH/USDT"):
        await assert_summary_equals_recount(pool, await _series_id(pool, symbol), 1)


async def test_the_daily_job_compacts_closed_months_and_logs_them(pool: Pool) -> None:
    await _store(pool, _candles(0, 1440, start=datetime(2020, 1, 1, tzinfo=UTC)))

    run_id = await retain_logs(pool, retention_days=30)

    metadata = await pool.fetchval("SELECT metadata FROM job_execution_logs WHERE id = $1", run_id)
    assert metadata["compacted_partitions"] == ["candle_data_1m_2020_01"]
    assert await pool.fetchval("SELECT count(*) FROM candle_data") == 0


async def test_the_api_answers_compacted_candles_as_json_and_csv_alike(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], compacted: int
) -> None:
    params = {"symbol": "BTC/USDT", "timeframe": "1m", "start": "2025-01-01T00:00:00Z", "limit": "300"}

    answer = await client.get("/api/v1/market-data/ohlcv", params=params, headers=viewer_headers)
    csv = await client.get("/api/v1/market-data/ohlcv", params={**params, "format": "csv"}, headers=viewer_headers)

    expected = _expected(0, 303)  # minutes 5, 6 and 7 are missing
    assert _bits([tuple(row) for row in answer.json()]) == _bits(expected)
    lines = csv.text.splitlines()[1:]
    assert [line.split(",", 2)[2] for line in lines] == [",".join(map(repr, row[1:])) for row in expected]


async def test_the_newest_candles_mix_rows_written_since_with_compacted_ones(pool: Pool, compacted: int) -> None:
    revised = (_ms(JANUARY + 10 * MINUTE), 1.5, 2.5, 1.25, 2.0, 7.0)
    await _store(pool, [(JANUARY + 10 * MINUTE, *revised[1:]), (JANUARY + 6 * MINUTE, *_values(6))])

    newest = await _read(pool, None, JANUARY + 20 * MINUTE, limit=15)

    stored = {row[0]: row for row in _expected(0, 20)}
    stored.update({revised[0]: revised, _ms(JANUARY + 6 * MINUTE): (_ms(JANUARY + 6 * MINUTE), *_values(6))})
    assert _bits(newest) == _bits([stored[ms] for ms in sorted(stored)][-15:])


async def test_a_series_resumed_after_its_month_was_compacted_appends_after_it(pool: Pool) -> None:
    await _store(pool, _candles(0, 1440))
    await compact_closed_partitions(pool, now=NOW)
    later = _candles(0, 600, start=JANUARY + 20 * DAY)

    assert await _store(pool, later) == len(later)

    assert _bits(await _read(pool, JANUARY, None)) == _bits(_expected(0, 1440) + _expected(0, 600, JANUARY + 20 * DAY))
    await assert_summary_equals_recount(pool, await _series_id(pool), 1)


@pytest.mark.parametrize(("timeframe", "step"), [("1h", timedelta(hours=1)), ("1M", None)])
async def test_longer_timeframes_are_compacted_by_month_or_year_and_read_back(
    pool: Pool, timeframe: str, step: timedelta | None
) -> None:
    if step is None:
        opens = [datetime(2023, month, 1, tzinfo=UTC) for month in (1, 2, 3, 5, 12)]
    else:
        opens = [datetime(2023, 3, 1, tzinfo=UTC) + h * step for h in range(2000) if h % 97]
    rows = [(moment, *_values(n)) for n, moment in enumerate(opens)]
    await store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe=timeframe, rows=rows)
    before = await _view(pool)

    await compact_closed_partitions(pool, now=NOW)

    query = CandleQuery(
        exchange="binance", symbol="BTC/USDT", timeframe=timeframe, start=opens[0], end=None, limit=5000
    )
    assert _bits(list(await repository.read_candles(pool, query))) == _bits([(_ms(r[0]), *r[1:]) for r in rows])
    assert await _view(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM candle_data") == 0


async def test_a_rejected_candle_stored_since_and_compacted_is_no_longer_counted(pool: Pool, compacted: int) -> None:
    await pool.execute(
        "INSERT INTO candle_rejections (exchange, symbol, timeframe, open_time, reason, rejected_at) "
        "VALUES ('binance', 'BTC/USDT', '1m', $1, 'high below low', $2), ('binance', 'BTC/USDT', '1m', $3, 'NaN', $2)",
        JANUARY + 10 * MINUTE,
        NOW,
        JANUARY + 6 * MINUTE,
    )

    rejected = await repository.count_rejected(pool, exchange="binance", symbol="BTC/USDT")

    assert rejected == {"1m": 1}  # minute 6 is still missing


async def test_a_partition_busy_when_it_was_to_be_emptied_is_emptied_by_the_next_upkeep(
    pool: Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "EMPTY_LOCK_TIMEOUT", "SET LOCAL lock_timeout = '100ms'")
    await _store(pool, _candles(0, 1440))
    reader = await asyncpg.connect(database_url)
    try:
        async with reader.transaction():  # a reader inside the partition: it cannot be truncated meanwhile
            await reader.fetchval("SELECT count(*) FROM candle_data_1m_2025_01")
            busy = await compact_closed_partitions(pool, now=NOW)
    finally:
        await reader.close()

    emptied = await compact_closed_partitions(pool, now=NOW)

    assert (busy, emptied) == ([], ["candle_data_1m_2025_01"])
    assert await pool.fetchval("SELECT pg_relation_size('candle_data_1m_2025_01')") == 0
    assert len(await _read(pool, JANUARY, None)) == 1440 - 3


async def test_candles_loaded_by_hand_off_the_grid_stay_rows_and_the_rest_is_compacted(pool: Pool) -> None:
    fives = [(JANUARY + 5 * m * MINUTE, *_values(m)) for m in range(2 * 288)]
    await store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe="5m", rows=fives)
    series_id = await pool.fetchval("SELECT id FROM candle_series WHERE timeframe = '5m'")
    off_grid = _ms(JANUARY + 3 * MINUTE) // 60_000
    await pool.execute("INSERT INTO candle_data VALUES ($1, $2, 1, 2, 0.5, 1.5, 3)", series_id, off_grid)
    await pool.execute("SELECT recount_candle_series($1)", series_id)
    before = await _view(pool)

    emptied = await compact_closed_partitions(pool, now=NOW)

    assert emptied == []
    assert await pool.fetchval(SEGMENTS, series_id) == 1  # the second day; the first stays rows
    assert await pool.fetchval(SERIES_ROWS, series_id) == 288 + 1
    assert await _view(pool) == before


async def test_the_newest_candles_come_from_a_segment_newer_than_as_many_rows(pool: Pool, compacted: int) -> None:
    await _store(pool, [(JANUARY + 10 * MINUTE, 1.5, 2.5, 1.25, 2.0, 7.0), (JANUARY + 6 * MINUTE, *_values(6))])

    newest = await _read(pool, None, JANUARY + 20 * MINUTE, limit=2)

    assert _bits(newest) == _bits(_expected(18, 2))


@pytest.mark.parametrize(
    ("first_minute", "limit"),
    [(0, 1440), (1, 1440), (1439, 2), (1440, 1440), (1440 + 59, 3), (2 * 1440 - 1, 1441), (3 * 1440 - 1, 2), (0, 5000)],
)
async def test_a_range_from_any_minute_holds_the_candles_of_every_day_it_reaches(
    pool: Pool, compacted: int, first_minute: int, limit: int
) -> None:
    everything = _expected(0, 3 * 1440) + _expected(0, 1440, JANUARY + 31 * DAY)
    start = JANUARY + first_minute * MINUTE

    rows = await _read(pool, start, None, limit=limit)

    first = next(i for i, row in enumerate(everything) if row[0] >= _ms(start))
    assert _bits(rows) == _bits(everything[first : first + limit])


@pytest.mark.parametrize(
    ("end_minute", "limit"), [(1440, 1440), (1441, 2), (1501, 61), (2 * 1440, 1440), (3 * 1440 - 1, 1441), (2880, 3)]
)
async def test_the_newest_candles_before_any_minute_hold_those_of_every_day_they_reach(
    pool: Pool, compacted: int, end_minute: int, limit: int
) -> None:
    everything = _expected(0, 3 * 1440)
    end = JANUARY + end_minute * MINUTE

    rows = await _read(pool, None, end, limit=limit)

    before = [row for row in everything if row[0] < _ms(end)]
    assert _bits(rows) == _bits(before[-limit:])


async def test_monthly_candles_are_read_from_and_before_any_month_across_compacted_years(pool: Pool) -> None:
    opens = [datetime(2023, month, 1, tzinfo=UTC) for month in (1, 2, 3, 5, 12)] + [
        datetime(2024, month, 1, tzinfo=UTC) for month in (1, 2)
    ]
    rows = [(moment, *_values(n)) for n, moment in enumerate(opens)]
    await store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe="1M", rows=rows)
    await compact_closed_partitions(pool, now=NOW)
    stored = [(_ms(row[0]), *row[1:]) for row in rows]

    async def read(start: datetime | None, end: datetime | None, limit: int) -> list[bytes]:
        query = CandleQuery(exchange="binance", symbol="BTC/USDT", timeframe="1M", start=start, end=end, limit=limit)
        return _bits(list(await repository.read_candles(pool, query)))

    assert await pool.fetchval("SELECT count(*) FROM candle_segments") == 2
    assert await read(datetime(2023, 4, 15, tzinfo=UTC), None, 2) == _bits(stored[3:5])
    assert await read(datetime(2023, 12, 1, tzinfo=UTC), None, 2) == _bits(stored[4:6])
    assert await read(None, datetime(2024, 2, 1, tzinfo=UTC), 3) == _bits(stored[3:6])
    assert await read(None, datetime(2023, 12, 1, tzinfo=UTC), 1) == _bits(stored[3:4])
