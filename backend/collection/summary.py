"""The coverage summary of a series, updated from the candles a write inserted (no candle is read).

A series' summary is, per partition period, how many candles it has with the first and last open
time, and every gap: two stored candles ``after`` and ``next`` with missing candles between them.
Inserted candles (never ones already stored) can only land inside a gap, before the first candle
or after the last one; each such stretch is rebuilt from its two ends and the candles now in it.
Times are stored minutes (:func:`backend.collection.timeframes.to_minute`).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from backend.collection.timeframes import STEP_MINUTES, next_open_minute


@dataclass(frozen=True, slots=True)
class Period:
    """One time partition of a timeframe: open times from ``start`` up to, not including, ``end``."""

    start: int
    end: int
    table: str  # the partition's name, e.g. candle_data_1m_2025_01


@dataclass(frozen=True, slots=True)
class PeriodCount:
    start: int
    candles: int
    first: int
    last: int


@dataclass(slots=True)
class SummaryChange:
    """What inserting some candles does to the summary: counts to add, gaps to write and to remove."""

    counts: list[PeriodCount] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (after, next), new or with a new next
    removed_gaps: list[int] = field(default_factory=list)  # the ``after`` of gaps that are gone


def count_by_period(minutes: Sequence[int], periods: Sequence[Period]) -> list[PeriodCount]:
    """Candles per period of sorted ``minutes``; ``periods`` (sorted) cover them all."""
    counts: list[PeriodCount] = []
    index = 0
    for period in periods:
        end = bisect.bisect_left(minutes, period.end, index)
        if end > index:
            counts.append(PeriodCount(period.start, end - index, minutes[index], minutes[end - 1]))
        index = end
    if index != len(minutes):
        raise ValueError("periods do not cover every candle")
    return counts


def change_after_insert(
    timeframe: str,
    inserted: Sequence[int],
    *,
    first: int | None,
    last: int | None,
    gaps: Sequence[tuple[int, int]],
    periods: Sequence[Period],
) -> SummaryChange:
    """The summary change for ``inserted`` (sorted, none stored before).

    ``first``/``last`` are the series' stored candles before the insert (None when it had none) and
    ``gaps`` (sorted) its gaps that overlap ``inserted[0]..inserted[-1]``.
    """
    change = SummaryChange(counts=count_by_period(inserted, periods))
    # the stretches an inserted candle can fall in, in order: before the first candle, the gaps,
    # after the last one (None: no stored candle on that side)
    stretches: list[tuple[int | None, int | None]] = [(None, first)] if first is not None else [(None, None)]
    stretches += gaps
    if last is not None:
        stretches.append((last, None))
    position = 0
    for after, following in stretches:
        start = position if after is None else bisect.bisect_right(inserted, after, position)
        end = len(inserted) if following is None else bisect.bisect_left(inserted, following, start)
        if start > position:
            break  # candles between two stretches: they were stored already
        if start == end:
            continue
        position = end
        ends = [after] if after is not None else []
        chain = [*ends, *inserted[start:end], *([following] if following is not None else [])]
        new = _gaps(chain, timeframe)
        change.gaps += new
        if after is not None and following is not None and after not in {a for a, _ in new}:
            change.removed_gaps.append(after)
    if position != len(inserted):
        raise ValueError("an inserted candle falls on no stretch: it was stored already")
    return change


def _gaps(minutes: Sequence[int], timeframe: str) -> list[tuple[int, int]]:
    """Consecutive pairs of ``minutes`` (ascending) with a candle missing between them."""
    step = STEP_MINUTES.get(timeframe)
    if step is None:  # calendar months
        return [(a, b) for a, b in itertools.pairwise(minutes) if b > next_open_minute(a, timeframe)]
    if minutes and minutes[-1] - minutes[0] == (len(minutes) - 1) * step:
        return []  # open times on the grid, ascending, each one step after the previous one
    return [(a, b) for a, b in itertools.pairwise(minutes) if b - a > step]
