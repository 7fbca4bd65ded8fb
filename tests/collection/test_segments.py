"""Encoding a segment and decoding it again gives back every candle bit for bit, and its open times."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, datetime

import pytest

from backend.collection.segments import (
    Candle,
    OffTheGrid,
    decode_segment,
    encode_segment,
    segment_start,
    split_by_segment,
)
from backend.collection.timeframes import STEP_MINUTES, to_minute

DAY = to_minute(datetime(2025, 1, 6, tzinfo=UTC))  # a Monday


def _bits(values: tuple[float, ...]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def _round_trip(candles: list[Candle], timeframe: str = "1m") -> list[Candle]:
    segment = encode_segment(segment_start(candles[0][0], timeframe), candles, timeframe)
    minutes, values = decode_segment(
        timeframe, segment.first_minute, segment.runs, segment.body, segment.raw_positions, segment.raw_values
    )
    return [(minute, *value) for minute, value in zip(minutes, values, strict=True)]


def _market(rng: random.Random, count: int, price: int, tick_digits: int, volume_digits: int) -> list[Candle]:
    """A random walk on a price tick, with volumes of a lot size: decimals as an exchange sends them."""
    candles = []
    tick, lot = 10**tick_digits, 10**volume_digits
    for minute in range(DAY, DAY + count):
        open_ = price if rng.random() < 0.95 else price + rng.randint(-30, 30)
        close = max(1, open_ + round(rng.gauss(0, price * 0.0005)))
        high = max(open_, close) + rng.randint(0, 40)
        low = max(1, min(open_, close) - rng.randint(0, 40))
        volume = round(math.exp(rng.gauss(1, 2)) * lot)
        # floats parsed from the exchange's decimal text, as ccxt does
        text = [f"{n // tick}.{n % tick:0{tick_digits}d}" for n in (open_, high, low, close)]
        candles.append((minute, *map(float, text), float(f"{volume / lot:.{volume_digits}f}")))
        price = close
    return candles


@pytest.mark.parametrize(
    ("price", "tick_digits", "volume_digits"),
    [(6_000_000, 2, 5), (4321, 8, 0), (250_000, 4, 8), (12, 1, 3)],
    ids=["btc", "tiny-price", "many-decimals", "few-digits"],
)
def test_market_candles_come_back_bit_for_bit(price: int, tick_digits: int, volume_digits: int) -> None:
    candles = _market(random.Random(price), 1440, price, tick_digits, volume_digits)

    decoded = _round_trip(candles)

    assert [c[0] for c in decoded] == [c[0] for c in candles]
    assert [_bits(c[1:]) for c in decoded] == [_bits(c[1:]) for c in candles]


def test_a_day_of_market_candles_takes_under_16_bytes_a_candle() -> None:
    candles = _market(random.Random(1), 1440, 6_000_000, 2, 5)

    segment = encode_segment(DAY, candles, "1m")

    assert len(segment.body) < 16 * 1440
    assert segment.raw_positions is None


def test_values_that_are_not_short_decimals_come_back_bit_for_bit() -> None:
    candles: list[Candle] = [(DAY + m, 100.0 + m, 101.0 + m, 99.0 + m, 100.5 + m, 2.0) for m in range(10)]
    candles[2] = (DAY + 2, 0.1 + 0.2, 1.0, 0.25, 0.5, 3.0)
    candles[5] = (DAY + 5, 100.0, 101.0, 99.0, 100.5, -0.0)
    candles[7] = (DAY + 7, 1e300, 1e300, 1e300, 1e300, 1.5)
    candles[8] = (DAY + 8, 1e-300, 2e-300, 5e-324, 1e-300, 1e16 + 2)

    decoded = _round_trip(candles)

    assert [_bits(c[1:]) for c in decoded] == [_bits(c[1:]) for c in candles]


def test_the_candles_that_cannot_be_scaled_are_kept_apart_and_the_rest_stay_compact() -> None:
    candles = _market(random.Random(2), 1440, 6_000_000, 2, 5)
    candles[100] = (candles[100][0], 0.1 + 0.2, *candles[100][2:])

    segment = encode_segment(DAY, candles, "1m")

    assert segment.raw_positions == [100]
    assert len(segment.body) < 16 * 1440


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1h", "1d", "1w", "1M"])
def test_open_times_with_holes_come_back_on_every_timeframe(timeframe: str) -> None:
    if timeframe == "1M":
        opens = [to_minute(datetime(2024, month, 1, tzinfo=UTC)) for month in (1, 2, 3, 5, 6, 12)]
    else:
        step = STEP_MINUTES[timeframe]
        first = segment_start(DAY, timeframe)
        first += -(first - DAY) % step  # on the grid (weeks begin on Mondays)
        opens = [first + i * step for i in range(40) if i not in (0, 3, 4, 17)]
    candles: list[Candle] = [(minute, 1.5, 2.0, 1.0, 1.75, 10.0) for minute in opens]
    groups = split_by_segment(candles, timeframe)

    decoded = [candle for start, group in groups.items() for candle in _round_trip(group, timeframe)]

    assert [c[0] for c in decoded] == opens
    assert all(start <= group[0][0] for start, group in groups.items())


def test_segments_are_days_for_minutes_months_for_hours_and_years_for_days() -> None:
    moment = to_minute(datetime(2025, 5, 17, 13, 45, tzinfo=UTC))

    assert segment_start(moment, "1m") == to_minute(datetime(2025, 5, 17, tzinfo=UTC))
    assert segment_start(moment, "1h") == to_minute(datetime(2025, 5, 1, tzinfo=UTC))
    assert segment_start(moment, "1d") == to_minute(datetime(2025, 1, 1, tzinfo=UTC))


def test_candles_off_the_timeframe_grid_are_refused() -> None:
    candles: list[Candle] = [(DAY + minute, 1.5, 2.0, 1.0, 1.75, 10.0) for minute in (0, 5, 13)]

    with pytest.raises(OffTheGrid):
        encode_segment(DAY, candles, "5m")
