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

import msgspec

from backend.collection.timeframes import floor_open, from_minute, next_open
from backend.db.pool import Connection, Pool
from backend.settings import Settings

# Every timeframe of every enabled config, in config order, with its newest stored candle's open
# minute (null: nothing stored); $1/$2 narrow to one exchange / symbol when not null.
SERIES_FRESHNESS = """
SELECT config.id AS config_id, config.exchange, config.symbol, tf.timeframe, config.interval_minutes,
       config.schedule_anchor_at,
       (SELECT max(counts.last_minute) FROM candle_counts AS counts WHERE counts.series_id = series.id)
           AS newest_minute
FROM data_collection_configs AS config
CROSS JOIN LATERAL unnest(config.timeframes) WITH ORDINALITY AS tf(timeframe, position)
LEFT JOIN candle_series AS series
       ON series.exchange = config.exchange AND series.symbol = config.symbol AND series.timeframe = tf.timeframe
WHERE config.enabled AND ($1::text IS NULL OR config.exchange = $1) AND ($2::text IS NULL OR config.symbol = $2)
ORDER BY config.id, tf.position
"""
WORST_SERIES = 5


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


async def read_series_freshness(
    db: Pool | Connection,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    exchange: str | None = None,
    symbol: str | None = None,
) -> list[SeriesFreshness]:
    """Every series of every enabled config (of one market when ``exchange``/``symbol`` are given),
    in config and timeframe order, judged at ``now`` (default: the current time).

    ``settings`` gives ``FRESHNESS_MARGIN_SECONDS`` and the interval unit; pass the service's own
    (its defaults are used without them).
    """
    now = now or datetime.now(UTC)
    settings = settings or Settings()
    rows = await db.fetch(SERIES_FRESHNESS, exchange, symbol)
    return [
        judge_freshness(
            config_id=row["config_id"],
            exchange=row["exchange"],
            symbol=row["symbol"],
            timeframe=row["timeframe"],
            newest_candle=None if row["newest_minute"] is None else from_minute(row["newest_minute"]),
            interval_seconds=row["interval_minutes"] * settings.interval_unit_seconds,
            enabled_at=row["schedule_anchor_at"],
            margin_seconds=settings.freshness_margin_seconds,
            now=now,
        )
        for row in rows
    ]


def judge_freshness(
    *,
    config_id: int,
    exchange: str,
    symbol: str,
    timeframe: str,
    newest_candle: datetime | None,
    interval_seconds: float,
    enabled_at: datetime,
    margin_seconds: float,
    now: datetime,
) -> SeriesFreshness:
    """The rule of this module's docstring for one series."""
    allowance = 2 * interval_seconds + margin_seconds
    first_open = floor_open(enabled_at, timeframe)  # the candle open when the config was enabled
    expected_end = next_open(first_open, timeframe)
    expected_length = (expected_end - first_open).total_seconds()
    lag_seconds: float | None = None
    if newest_candle is not None:
        newest_end = next_open(newest_candle, timeframe)
        following_end = next_open(newest_end, timeframe)
        lag_seconds = candle_lag_seconds(newest_candle, timeframe, now=now)
        expected_length = (following_end - newest_end).total_seconds()
        expected_end = max(expected_end, following_end)
    stale_at = expected_end.timestamp() + allowance
    return SeriesFreshness(
        config_id=config_id,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        newest_candle=newest_candle,
        lag_seconds=lag_seconds,
        stale_after_seconds=expected_length + allowance,
        stale_at=datetime.fromtimestamp(stale_at, UTC),
        stale=now.timestamp() > stale_at,
    )


def candle_lag_seconds(open_time: datetime, timeframe: str, *, now: datetime) -> float:
    """Seconds from the end (close) of the candle opening at ``open_time`` until ``now``."""
    return (now - next_open(open_time, timeframe)).total_seconds()


def summarize_freshness(series: list[SeriesFreshness], *, worst: int = WORST_SERIES) -> FreshnessSummary:
    """The count of series and of stale ones, and the ``worst`` series: stale first, then by how
    far past (or how close to) their limit they are."""
    ranked = sorted(series, key=lambda s: (not s.stale, s.stale_at))
    return FreshnessSummary(
        series=len(series),
        stale_series=sum(1 for s in series if s.stale),
        worst=ranked[:worst],
    )
