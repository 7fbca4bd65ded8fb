"""Compacted candles: the candles of one series over a day, a month or a year, encoded as one row.

A segment keeps its candles' open times as runs of consecutive candles on the timeframe's grid,
counted from its first candle, and their values as integers: each price of the segment times
10^k (the smallest k that makes every price a whole number), each volume times 10^kv, read back
as that integer divided by 10^k, which gives the very float the exchange's decimal text parsed
to. The integers are stored as differences that stay small from one candle to the next (close
from the previous close, open from the previous close, high and low from the close), each column
in the fewest bytes (1, 2, 4 or 8) its largest difference needs. A candle whose values do not come
back bit for bit that way (a value that is not a short decimal, a negative zero) is kept as it is
in ``raw_values``, after the integers have been checked by decoding them.

The body, little-endian: version (1 byte), k, kv, the widths of the open, high, low, close and
volume columns (1 byte each), the close before the first candle (8 bytes), then the five columns.
The same layout is decoded in SQL by ``candle_segment_candles`` (the ``candles`` view, merges).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate, chain, repeat
from operator import add, eq, mul, sub, truediv
from typing import Any

from backend.collection.timeframes import STEP_MINUTES, from_minute, to_minute

VERSION = 1
HEADER = struct.Struct("<8Bq")
TYPECODES = {1: "b", 2: "h", 4: "i", 8: "q"}
MAX_SCALE = 18  # 10^18: still exact as a float, and a whole price times it still fits 8 bytes
EXACT_INTEGERS = 2**53  # a scaled value must be exact as a float to be divided back
if any(array(code).itemsize != width for width, code in TYPECODES.items()):  # pragma: no cover
    raise ImportError("this platform's array item sizes differ from 1, 2, 4, 8 bytes")
BIG_ENDIAN = sys.byteorder == "big"

# Segment spans: a day for the timeframes kept in monthly partitions, a month or a year for longer ones.
DAY_SEGMENTS = frozenset({"1m", "3m", "5m"})
YEAR_SEGMENTS = frozenset({"1d", "3d", "1w", "1M"})

Candle = tuple[int, float, float, float, float, float]
"""A stored candle: open minute (:func:`backend.collection.timeframes.to_minute`), open, high, low, close, volume."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One row of ``candle_segments`` (without its series)."""

    start: int  # the minute its span begins (a day, month or year start)
    first_minute: int
    last_minute: int
    candles: int
    runs: list[int]  # [first slot, length, first slot, length, ...], slots counted from first_minute
    body: bytes
    raw_positions: list[int] | None  # candles kept as they are (their place among the segment's)...
    raw_values: list[float] | None  # ...and their five values each


class OffTheGrid(ValueError):
    """Candles whose open times are not all on one grid of the timeframe (loaded by hand)."""


def segment_start(minute: int, timeframe: str) -> int:
    """The minute the segment holding a candle opening at ``minute`` begins."""
    moment = from_minute(minute)
    if timeframe in DAY_SEGMENTS:
        moment = moment.replace(hour=0, minute=0)
    elif timeframe in YEAR_SEGMENTS:
        moment = moment.replace(month=1, day=1, hour=0, minute=0)
    else:
        moment = moment.replace(day=1, hour=0, minute=0)
    return to_minute(moment)


def segment_span_minutes(timeframe: str) -> int:
    """The most minutes a segment of the timeframe spans (a day, 31 days, a leap year)."""
    if timeframe in DAY_SEGMENTS:
        return 1440
    return 366 * 1440 if timeframe in YEAR_SEGMENTS else 31 * 1440


def split_by_segment(candles: Sequence[Candle], timeframe: str) -> dict[int, list[Candle]]:
    """Candles (ascending) grouped by the segment they belong to."""
    groups: dict[int, list[Candle]] = {}
    end = None
    current: list[Candle] = []
    for candle in candles:
        if end is None or candle[0] >= end:
            start = segment_start(candle[0], timeframe)
            end = _segment_end(start, timeframe)
            current = groups.setdefault(start, [])
        current.append(candle)
    return groups


def _segment_end(start: int, timeframe: str) -> int:
    moment = from_minute(start)
    if timeframe in DAY_SEGMENTS:
        return start + 1440
    if timeframe in YEAR_SEGMENTS:
        return to_minute(moment.replace(year=moment.year + 1))
    year, month = divmod(moment.month, 12)
    return to_minute(moment.replace(year=moment.year + year, month=month + 1))


def encode_segment(start: int, candles: Sequence[Candle], timeframe: str) -> Segment:
    """The segment of ``candles`` (ascending open minutes, all within one span, at least one)."""
    minutes = [candle[0] for candle in candles]
    runs = _runs(minutes, timeframe)
    if open_minutes(timeframe, minutes[0], runs) != minutes:
        raise OffTheGrid(f"{timeframe} candles opening off the timeframe's grid cannot be compacted")
    prices = [value for candle in candles for value in candle[1:5]]
    volumes = [candle[5] for candle in candles]
    (scale, prices_exact), (volume_scale, volumes_exact) = _scale(prices), _scale(volumes)
    if prices_exact and volumes_exact and _small_enough(prices, scale) and _small_enough(volumes, volume_scale):
        raw: set[int] = set()
    else:
        raw = _unscalable(candles, scale, volume_scale)
    wanted = _packed(candle[1:] for candle in candles)
    while True:
        body = _body(candles, scale, volume_scale, raw)
        decoded = decode_values(body, len(candles), None, None)
        if _packed(decoded) == wanted:
            break
        wrong = {i for i, (got, candle) in enumerate(zip(decoded, candles, strict=True)) if not _same(got, candle[1:])}
        if wrong <= raw:
            break
        raw |= wrong  # a value that would not come back bit for bit: keep it as it is
    positions = sorted(raw)
    return Segment(
        start=start,
        first_minute=minutes[0],
        last_minute=minutes[-1],
        candles=len(candles),
        runs=runs,
        body=body,
        raw_positions=positions or None,
        raw_values=[value for i in positions for value in candles[i][1:]] or None,
    )


def decode_segment(
    timeframe: str,
    first_minute: int,
    runs: Sequence[int],
    body: bytes,
    raw_positions: Sequence[int] | None,
    raw_values: Sequence[float] | None,
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Open minutes and values of a segment's candles, oldest first."""
    minutes = open_minutes(timeframe, first_minute, runs)
    return minutes, decode_values(body, len(minutes), raw_positions, raw_values)


def open_minutes(timeframe: str, first_minute: int, runs: Sequence[int]) -> list[int]:
    """The open minutes of a segment's candles, from its runs of grid slots."""
    step = STEP_MINUTES.get(timeframe)
    if step is None:  # calendar months
        slots = [slot for i in range(0, len(runs), 2) for slot in range(runs[i], runs[i] + runs[i + 1])]
        first = from_minute(first_minute)
        return [to_minute(_months_after(first, slot)) for slot in slots]
    minutes: list[int] = []
    for i in range(0, len(runs), 2):
        begin = first_minute + runs[i] * step
        minutes += range(begin, begin + runs[i + 1] * step, step)
    return minutes


def decode_values(
    body: bytes,
    count: int,
    raw_positions: Sequence[int] | None,
    raw_values: Sequence[float] | None,
    *,
    first: int = 0,
    stop: int | None = None,
    open_times: Iterable[int] | None = None,
) -> list[tuple[Any, ...]]:
    """The (open, high, low, close, volume) of a segment's candles ``first`` up to ``stop`` (of
    ``count``), each after its open time when ``open_times`` are given (one per candle returned)."""
    version, scale, volume_scale, *widths, base = HEADER.unpack_from(body)
    if version != VERSION:
        raise ValueError(f"unknown candle segment version {version}")
    stop = count if stop is None else stop
    offsets = list(accumulate((count * width for width in widths[:-1]), initial=HEADER.size))
    to_open, to_high, to_low, to_close, volumes = (
        _column(body, offset, width, first, stop) for offset, width in zip(offsets, widths, strict=True)
    )
    base += sum(_column(body, offsets[3], widths[3], 0, first))  # the close before candle ``first``
    chain = list(accumulate(to_close, initial=base))  # the close before each candle, then the last close
    closes = chain[1:]
    divisor, volume_divisor = float(10**scale), float(10**volume_scale)
    value_columns = (
        map(truediv, map(add, chain, to_open), repeat(divisor)),
        map(truediv, map(add, closes, to_high), repeat(divisor)),
        map(truediv, map(sub, closes, to_low), repeat(divisor)),
        map(truediv, closes, repeat(divisor)),
        map(truediv, volumes, repeat(volume_divisor)),
    )
    # (the open column's map runs one longer than the others: the chain holds the last close too)
    rows = (
        zip(open_times, *value_columns, strict=False) if open_times is not None else zip(*value_columns, strict=False)
    )
    values = list(rows)
    if raw_positions:
        assert raw_values is not None
        for n, position in enumerate(raw_positions):
            if first <= position < stop:
                kept = tuple(raw_values[5 * n : 5 * n + 5])
                values[position - first] = kept if open_times is None else (values[position - first][0], *kept)
    return values


def _column(body: bytes, offset: int, width: int, first: int, stop: int) -> array[int]:
    """Items ``first`` up to ``stop`` of the column of ``width``-byte integers at ``offset``."""
    column = array(TYPECODES[width])
    column.frombytes(body[offset + first * width : offset + stop * width])
    if BIG_ENDIAN:  # pragma: no cover
        column.byteswap()
    return column


def _body(candles: Sequence[Candle], scale: int, volume_scale: int, raw: set[int]) -> bytes:
    """The encoded values; candles in ``raw`` count as flat (prices of the close before) with no volume."""
    if raw:
        candles = [(0, 0.0, 0.0, 0.0, 0.0, 0.0) if i in raw else candle for i, candle in enumerate(candles)]
    _, opens, highs, lows, closes, volumes = zip(*candles, strict=True)
    factor, volume_factor = float(10**scale), float(10**volume_scale)
    to_open, to_high, to_low, to_close = (
        list(map(round, map(mul, column, repeat(factor)))) for column in (opens, highs, lows, closes)
    )
    scaled_volumes = list(map(round, map(mul, volumes, repeat(volume_factor))))
    kept = [i for i in range(len(candles)) if i not in raw]
    base = previous = to_open[kept[0]] if kept else 0
    for i in sorted(raw):  # flat at the close before them
        previous = to_close[i - 1] if i > 0 else base
        to_open[i] = to_high[i] = to_low[i] = to_close[i] = previous
    before = [base, *to_close[:-1]]
    columns = [
        list(map(sub, to_open, before)),
        list(map(sub, to_high, to_close)),
        list(map(sub, to_close, to_low)),
        list(map(sub, to_close, before)),
        scaled_volumes,
    ]
    widths = [_width(column) for column in columns]
    parts = [HEADER.pack(VERSION, scale, volume_scale, *widths, base)]
    for width, column in zip(widths, columns, strict=True):
        packed = array(TYPECODES[width], column)
        if BIG_ENDIAN:  # pragma: no cover
            packed.byteswap()
        parts.append(packed.tobytes())
    return b"".join(parts)


def _scale(values: Sequence[float]) -> tuple[int, bool]:
    """The smallest k that brings every value back from an integer over 10^k, and True; else the k
    that brings back the most, and False."""
    for scale in range(MAX_SCALE + 1):
        divisor = float(10**scale)
        try:
            if all(map(eq, map(truediv, map(round, map(mul, values, repeat(divisor))), repeat(divisor)), values)):
                return scale, True
        except (OverflowError, ValueError):  # inf or NaN: those are kept raw
            break
    needed = [(_digits(value), abs(value)) for value in values]

    def exact_at(scale: int) -> int:
        return sum(
            1 for digits, size in needed if digits is not None and digits <= scale and size * 10**scale < EXACT_INTEGERS
        )

    return max(range(MAX_SCALE + 1), key=lambda scale: (exact_at(scale), -scale)), False


def _small_enough(values: Sequence[float], scale: int) -> bool:
    """Every value times 10^scale is exact as a float (and so are the differences, in 8 bytes)."""
    largest: float = max(map(abs, values))
    return bool(largest * 10**scale < EXACT_INTEGERS)


def _packed(values: Iterable[Sequence[float]]) -> bytes:
    return array("d", chain.from_iterable(values)).tobytes()


def _digits(value: float) -> int | None:
    """The smallest k with round(value * 10^k) / 10^k == value (None: none up to MAX_SCALE)."""
    for scale in range(MAX_SCALE + 1):
        divisor = float(10**scale)
        try:
            if round(value * divisor) / divisor == value:
                return scale
        except (OverflowError, ValueError):
            return None
    return None


def _unscalable(candles: Sequence[Candle], scale: int, volume_scale: int) -> set[int]:
    """Candles whose values cannot be whole numbers at these scales, or too large to be exact."""
    return {
        i for i, candle in enumerate(candles) if not (_exact(candle[1:5], scale) and _exact(candle[5:], volume_scale))
    }


def _exact(values: Iterable[float], scale: int) -> bool:
    """Every value is a whole number over 10^scale, small enough to be exact as a float."""
    divisor = float(10**scale)
    try:
        return all(
            abs(value) * divisor < EXACT_INTEGERS and round(value * divisor) / divisor == value for value in values
        )
    except (OverflowError, ValueError):
        return False


def _same(got: Sequence[float], want: Sequence[float]) -> bool:
    """Bit for bit (0.0 and -0.0 differ)."""
    return struct.pack("<5d", *got) == struct.pack("<5d", *want)


def _width(column: Sequence[int]) -> int:
    low, high = min(column), max(column)
    for width in (1, 2, 4):
        bound = 1 << (8 * width - 1)
        if -bound <= low and high < bound:
            return width
    return 8


def _runs(minutes: Sequence[int], timeframe: str) -> list[int]:
    """Runs of consecutive candles: [first slot, length, ...], slots counted from ``minutes[0]``."""
    step = STEP_MINUTES.get(timeframe)
    first = minutes[0]
    runs: list[int] = []
    previous = None
    for minute in minutes:
        if step is not None:
            slot = (minute - first) // step
        else:
            slot = _months_between(from_minute(first), from_minute(minute))
        if previous is not None and slot == previous + 1:
            runs[-1] += 1
        else:
            runs += [slot, 1]
        previous = slot
    return runs


def _months_after(first: datetime, months: int) -> datetime:
    year, month = divmod(first.month - 1 + months, 12)
    return first.replace(year=first.year + year, month=month + 1)


def _months_between(first: datetime, later: datetime) -> int:
    return (later.year - first.year) * 12 + later.month - first.month
