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
    """What is stored of one series, and where it has holes."""

    exchange: str
    symbol: str
    timeframe: str
    first_candle: datetime
    last_candle: datetime
    candles: int
    expected_candles: int  # candles from first to last at this timeframe, had none been missing
    missing_candles: int
    gap_count: int
    largest_gaps: list[Gap]
