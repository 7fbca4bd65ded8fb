"""The database's timeframes (migration 0006) agree with the collector's."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.collection.timeframes import (
    SQL_INTERVALS,
    floor_open,
    floor_open_ms,
    next_open_minute,
    to_datetime,
    to_minute,
    to_ms,
)
from backend.db.pool import Pool

SAMPLE = datetime(2024, 1, 31, 13, 7, tzinfo=UTC)


async def test_every_timeframe_has_the_same_length_in_sql(pool: Pool) -> None:
    rows = await pool.fetch("SELECT timeframe, step::text AS step FROM candle_timeframes()")
    steps = {row["timeframe"]: row["step"] for row in rows}
    expected = await pool.fetch(
        "SELECT t, i::interval::text AS step FROM unnest($1::text[], $2::text[]) AS u(t, i)",
        list(SQL_INTERVALS),
        list(SQL_INTERVALS.values()),
    )

    assert steps == {row["t"]: row["step"] for row in expected}


async def test_the_next_open_time_is_the_same_in_sql(pool: Pool) -> None:
    for timeframe in SQL_INTERVALS:
        minute = to_minute(floor_open(SAMPLE, timeframe))
        in_sql = await pool.fetchval(
            "SELECT candle_next_open($1, step) FROM candle_timeframes() WHERE timeframe = $2", minute, timeframe
        )
        assert in_sql == next_open_minute(minute, timeframe), timeframe


def test_the_open_time_in_milliseconds_is_the_one_of_datetimes() -> None:
    moments = [SAMPLE, datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1969, 12, 29, 7, tzinfo=UTC)]
    for timeframe in SQL_INTERVALS:
        for moment in moments:
            moment_ms = to_ms(moment) + 1234
            expected = to_ms(floor_open(to_datetime(moment_ms), timeframe))
            assert floor_open_ms(moment_ms, timeframe) == expected, timeframe
