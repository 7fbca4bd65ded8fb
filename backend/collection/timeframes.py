"""Candle timeframes: their length, where candles begin, and when a candle is closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# PostgreSQL interval of each timeframe (months are calendar months)
SQL_INTERVALS = {
    "1m": "1 minute",
    "3m": "3 minutes",
    "5m": "5 minutes",
    "15m": "15 minutes",
    "30m": "30 minutes",
    "1h": "1 hour",
    "2h": "2 hours",
    "4h": "4 hours",
    "6h": "6 hours",
    "8h": "8 hours",
    "12h": "12 hours",
    "1d": "1 day",
    "3d": "3 days",
    "1w": "7 days",
    "1M": "1 month",
}
FIXED_STEPS = {
    "1m": timedelta(minutes=1),
    "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "8h": timedelta(hours=8),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "1w": timedelta(days=7),
}
STEP_MINUTES = {timeframe: int(step.total_seconds()) // 60 for timeframe, step in FIXED_STEPS.items()}
STEP_MS = {timeframe: minutes * 60_000 for timeframe, minutes in STEP_MINUTES.items()}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEK_START = datetime(1970, 1, 5, tzinfo=UTC)  # exchanges open weekly candles on Mondays
WEEK_START_MS = 4 * 86_400_000
MONTH = "1M"
SHORTEST_MONTH_MINUTES = 28 * 1440  # February
MINUTE = timedelta(minutes=1)


def next_open(open_time: datetime, timeframe: str) -> datetime:
    """When the candle after the one opening at ``open_time`` opens (its close)."""
    return shift_open(open_time, timeframe, 1)


def floor_open(moment: datetime, timeframe: str) -> datetime:
    """The open time of the candle that contains ``moment``."""
    if timeframe == MONTH:
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    origin = WEEK_START if timeframe == "1w" else EPOCH
    step = FIXED_STEPS[timeframe]
    return origin + (moment - origin) // step * step


def last_closed_open(now: datetime, timeframe: str) -> datetime:
    """Open time of the newest candle that is closed at ``now`` (the one before the open candle)."""
    return shift_open(floor_open(now, timeframe), timeframe, -1)


def candles_between(first: datetime, last: datetime, timeframe: str) -> int:
    """How many candles open from ``first`` up to ``last`` (both included), on one grid."""
    if last < first:
        return 0
    if timeframe == MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first) // FIXED_STEPS[timeframe] + 1


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def shift_open(open_time: datetime, timeframe: str, candles: int) -> datetime:
    """The open time ``candles`` candles after ``open_time`` (before it when negative)."""
    if timeframe == MONTH:
        year, month = divmod(open_time.month - 1 + candles, 12)
        return open_time.replace(year=open_time.year + year, month=month + 1)
    return open_time + candles * FIXED_STEPS[timeframe]


def candles_in(start: datetime, end: datetime, timeframe: str) -> int:
    """How many candles open from ``start`` up to (not including) ``end``."""
    first = floor_open(start, timeframe)
    if first < start:
        first = next_open(first, timeframe)
    last = floor_open(end, timeframe)
    if last == end:
        last = shift_open(last, timeframe, -1)
    return candles_between(first, last, timeframe)


def to_minute(moment: datetime) -> int:
    """``moment`` in whole minutes since the epoch, as candles are stored (open times are whole minutes)."""
    return (moment - EPOCH) // MINUTE


def from_minute(minute: int) -> datetime:
    return EPOCH + minute * MINUTE


def next_open_minute(open_minute: int, timeframe: str) -> int:
    """:func:`next_open` in stored minutes."""
    step = STEP_MINUTES.get(timeframe)
    if step is None:
        return to_minute(next_open(from_minute(open_minute), timeframe))
    return open_minute + step


def floor_open_ms(moment_ms: int, timeframe: str) -> int:
    """:func:`floor_open` in milliseconds since the epoch (no datetime on the way for fixed steps)."""
    step = STEP_MS.get(timeframe)
    if step is None:
        return to_ms(floor_open(to_datetime(moment_ms), timeframe))
    origin = WEEK_START_MS if timeframe == "1w" else 0
    return moment_ms - (moment_ms - origin) % step
