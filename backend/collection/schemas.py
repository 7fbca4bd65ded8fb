"""Bodies of the market-data routes."""

from __future__ import annotations

from datetime import datetime

import msgspec

CandleRow = tuple[int, float, float, float, float, float]
"""``[open time in ms, open, high, low, close, volume]``, as ccxt and charting libraries take it."""


class Gap(msgspec.Struct, kw_only=True):
    """Candles missing between two stored ones."""

    start: datetime  # open time of the first missing candle
    end: datetime  # open time of the next stored candle
    missing_candles: int


class SeriesCoverage(msgspec.Struct, kw_only=True):
    """What is stored of one series, where it has holes, and how fresh it is (see ``GET .../freshness``)."""

    exchange: str
    symbol: str
    timeframe: str
    first_candle: datetime
    last_candle: datetime
    candles: int
    expected_candles: int  # candles from first to last at this timeframe, had none been missing
    missing_candles: int  # not stored, neither confirmed empty nor beyond reach (rejected ones included)
    confirmed_empty_candles: int  # not stored: the exchange confirmed it has none (no trades)
    rejected_candles: int  # the exchange kept sending them broken: never stored
    gap_count: int
    largest_gaps: list[Gap]
    lag_seconds: float  # since the newest candle (last_candle) closed
    stale_after_seconds: float | None  # the lag beyond which the series is stale; null: no enabled config collects it
    stale: bool | None  # null: no enabled config collects it
    exchange_verified: bool  # the exchange's answers are proven by tests (else they confirm nothing alone)
    reach: str | None  # how far back the exchange serves, "the latest 720 1m candles"; null: its whole history
    reach_start: datetime | None  # the oldest open time it serves now; null: its whole history
    # not stored and older than the reach, from the oldest candle a config asks for (or
    # the first stored one) on: neither missing (nothing can fetch them) nor confirmed empty
    beyond_reach_candles: int


class ConfirmationsCleared(msgspec.Struct, kw_only=True):
    """What was forgotten of what the exchange had confirmed it does not have."""

    exchange: str
    symbol: str
    timeframe: str | None  # null: every timeframe of the market
    empty_ranges_cleared: int  # stretches confirmed empty (no trades)
    history_starts_cleared: int  # "nothing before this time" marks
