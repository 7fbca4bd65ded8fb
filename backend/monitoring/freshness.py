"""How fresh each collected series is: its newest stored candle, how long ago that candle ended, and
whether the series is stale.

Read from the coverage summary the collector keeps (``candle_counts``), never from the candles.

The rule. A series of an enabled config expects its next candle (the one after its newest) to be
stored once that candle has closed and the config's next run has come, give or take a missed run
and the time a run takes: it is **stale** when the next candle's length + two intervals +
``FRESHNESS_MARGIN_SECONDS`` have passed since its newest candle ended. Counted from the end of the
candle that was open when the config was last enabled (or created, or its interval changed) if
that is later, so that a config is given the time of its first runs to catch up; a series
without any candle is counted from there alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from backend.collection.timeframes import FIXED_STEPS, WEEK_START, floor_open, from_minute, next_open
from backend.db.pool import Connection, Pool
from backend.settings import Settings

# Every timeframe of every enabled config, in config order, with its newest stored candle's open
# minute (null: nothing stored): the last minute of its newest period, one index probe per series.
# $1/$2 narrow to one exchange / symbol when not null.
SERIES_FRESHNESS = """
SELECT config.id AS config_id, config.exchange, config.symbol, tf.timeframe, config.interval_minutes,
       extract(epoch FROM config.schedule_anchor_at)::float8 AS enabled_at,
       (SELECT counts.last_minute FROM candle_counts AS counts
        WHERE counts.series_id = series.id ORDER BY counts.period_start DESC LIMIT 1) AS newest_minute
FROM data_collection_configs AS config
CROSS JOIN LATERAL unnest(config.timeframes) WITH ORDINALITY AS tf(timeframe, position)
LEFT JOIN candle_series AS series
       ON series.exchange = config.exchange AND series.symbol = config.symbol AND series.timeframe = tf.timeframe
WHERE config.enabled AND ($1::text IS NULL OR config.exchange = $1) AND ($2::text IS NULL OR config.symbol = $2)
ORDER BY config.id, tf.position
"""
WORST_SERIES = 5
STEP_SECONDS = {timeframe: step.total_seconds() for timeframe, step in FIXED_STEPS.items()}
WEEK_START_SECONDS = WEEK_START.timestamp()


class SeriesFreshness(msgspec.Struct, kw_only=True, frozen=True):
    """One timeframe of an enabled config.

    - ``newest_candle``: open time of the newest stored candle (stored candles are closed); null
      when none is stored.
    - ``lag_seconds``: now minus the end (close) of that candle; null without a candle.
    - ``stale_after_seconds``: the lag beyond which the series is stale: the length of the candle
      expected next + two intervals + the margin.
    - ``stale_at``: when the series is (or became) stale if nothing new is stored: the newest
      candle's end + ``stale_after_seconds``, or later when the config was enabled since.
    - ``stale``: ``stale_at`` has passed.
    """

    config_id: int
    exchange: str
    symbol: str
    timeframe: str
    newest_candle: datetime | None
    lag_seconds: float | None
    stale_after_seconds: float
    stale_at: datetime
    stale: bool


class FreshnessSummary(msgspec.Struct, kw_only=True, frozen=True):
    """How many series the enabled configs collect, how many are stale, and the worst few
    (stale ones first, longest past their limit first)."""

    series: int
    stale_series: int
    worst: list[SeriesFreshness]


class JudgedSeries(NamedTuple):
    """:class:`SeriesFreshness` in numbers (times in seconds since the epoch, the newest candle in
    stored minutes): what a scrape and a summary of a thousand series read, without building a
    thousand answers."""

    config_id: int
    exchange: str
    symbol: str
    timeframe: str
    newest_minute: int | None
    lag_seconds: float | None
    stale_after_seconds: float
    stale_at: float
    stale: bool

    def answer(self) -> SeriesFreshness:
        return SeriesFreshness(
            config_id=self.config_id,
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            newest_candle=None if self.newest_minute is None else from_minute(self.newest_minute),
            lag_seconds=self.lag_seconds,
            stale_after_seconds=self.stale_after_seconds,
            stale_at=datetime.fromtimestamp(self.stale_at, UTC),
            stale=self.stale,
        )


async def judge_series(
    db: Pool | Connection,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
) -> list[JudgedSeries]:
    """Every series of every enabled config (of one market when ``exchange``/``symbol`` are given),
    in config and timeframe order, judged at ``now`` (default: the current time) by the rule of
    this module's docstring.

    ``settings`` gives ``FRESHNESS_MARGIN_SECONDS`` and the interval unit; pass the service's own
    (its defaults are used without them).
    """
    now_seconds = (now or datetime.now(UTC)).timestamp()
    settings = settings or Settings()
    unit = settings.interval_unit_seconds
    margin = settings.freshness_margin_seconds
    judged = []
    for config_id, exchange_id, symbol_name, timeframe, interval_minutes, enabled_at, newest_minute in await db.fetch(
        SERIES_FRESHNESS, exchange, symbol
    ):
        allowance = 2 * interval_minutes * unit + margin
        expected_end, expected_length, newest_end = _expected_candle(timeframe, enabled_at, newest_minute)
        stale_at = expected_end + allowance
        judged.append(
            JudgedSeries(
                config_id,
                exchange_id,
                symbol_name,
                timeframe,
                newest_minute,
                None if newest_end is None else now_seconds - newest_end,
                expected_length + allowance,
                stale_at,
                now_seconds > stale_at,
            )
        )
    return judged


async def read_series_freshness(
    db: Pool | Connection,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
) -> list[SeriesFreshness]:
    """:func:`judge_series` as answers."""
    judged = await judge_series(db, now=now, settings=settings, exchange=exchange, symbol=symbol)
    return [series.answer() for series in judged]


async def read_freshness_summary(
    db: Pool | Connection, *, settings: Settings | None = None, now: datetime | None = None, worst: int = WORST_SERIES
) -> FreshnessSummary:
    """The count of series and of stale ones, and the ``worst`` series: stale first, then by how
    far past (or how close to) their limit they are."""
    judged = await judge_series(db, now=now, settings=settings)
    ranked = sorted(judged, key=lambda s: (not s.stale, s.stale_at))
    return FreshnessSummary(
        series=len(judged),
        stale_series=sum(1 for s in judged if s.stale),
        worst=[series.answer() for series in ranked[:worst]],
    )


def _expected_candle(timeframe: str, enabled_at: float, newest_minute: int | None) -> tuple[float, float, float | None]:
    """When the candle a series expects next closes and how long it is, and when its newest candle
    closed (None without one), in seconds since the epoch. The candle expected next is the one after
    the newest, or the one open when the config was enabled if that closes later."""
    step = STEP_SECONDS.get(timeframe)
    if step is None:  # calendar months
        return _expected_month(datetime.fromtimestamp(enabled_at, UTC), newest_minute)
    origin = WEEK_START_SECONDS if timeframe == "1w" else 0.0
    expected_end = enabled_at - (enabled_at - origin) % step + step
    if newest_minute is None:
        return expected_end, step, None
    newest_end = newest_minute * 60.0 + step
    return max(expected_end, newest_end + step), step, newest_end


def _expected_month(enabled_at: datetime, newest_minute: int | None) -> tuple[float, float, float | None]:
    first_open = floor_open(enabled_at, "1M")
    first_end = next_open(first_open, "1M")
    if newest_minute is None:
        return first_end.timestamp(), (first_end - first_open).total_seconds(), None
    newest_close = next_open(from_minute(newest_minute), "1M")
    following_end = next_open(newest_close, "1M")
    if following_end >= first_end:
        return following_end.timestamp(), (following_end - newest_close).total_seconds(), newest_close.timestamp()
    return first_end.timestamp(), (first_end - first_open).total_seconds(), newest_close.timestamp()


def candle_lag_seconds(open_time: datetime, timeframe: str, *, now: datetime) -> float:
    """Seconds from the end (close) of the candle opening at ``open_time`` until ``now``."""
    return (now - next_open(open_time, timeframe)).total_seconds()
