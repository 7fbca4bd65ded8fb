"""The rules a candle keeps to be stored, and a page of candles as ccxt handed it over, checked.

A candle is stored only when its six values are numbers, finite, its prices positive, its volume
not negative, its high the highest and its low the lowest of its prices, and its open time on the
timeframe's grid, in milliseconds (not seconds or microseconds), and not after the window asked
for. Candles older than the window are left out, not judged: an exchange that answers its latest
candles whatever ``since`` says sends them. A page that carries a candle breaking them raises
:class:`InvalidCandle`: the walk asks again, and keeps only the good candles if the exchange sends
the same again.

A candle is stored only once it is final: closed by the walk's clock (the exchange's, or ours less a
settle delay, see ``dialects``), and not marked still open by the exchange (a seventh value
``False``, as the OKX dialect reads its ``confirm`` field). The first candle the exchange marks
still open ends the page: nothing from it on is stored, or taken as absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ccxt

from backend.collection.repository import CandleRow
from backend.collection.timeframes import floor_open_ms, shift_open, to_datetime, to_ms

FIELDS = ("open", "high", "low", "close", "volume")
# candles after the newest closed one an answer may hold, still open or not settled yet (and the next
# one of an exchange whose clock is a little ahead)
STILL_OPEN_CANDLES = 3
# open times below this are not in milliseconds (they would be before March 1973): seconds, as every
# time in seconds up to the year 5138 is
MILLISECONDS = 10**11


@dataclass(frozen=True)
class Rejection:
    """A candle the exchange sent that breaks the rules."""

    open_time: datetime | None  # on the grid (an off-grid time counts for the candle it falls in)
    reason: str
    values: tuple[Any, ...]  # as received

    def as_metadata(self) -> dict[str, Any]:
        return {
            "open_time": self.open_time.isoformat() if self.open_time else None,
            "reason": self.reason,
            "values": _json_safe(self.values),
        }


@dataclass(frozen=True)
class CheckedPage:
    """One answer, checked: from ``since`` up to the newest closed candle, sorted, one per open time."""

    rows: list[CandleRow]
    rejected: list[Rejection]
    still_open: datetime | None = None  # the first candle the exchange says is not final yet

    @property
    def trusted(self) -> bool:
        """No candle broke the rules: where this answer has no candle, the exchange has none."""
        return not self.rejected

    @property
    def first_open(self) -> datetime | None:
        """The oldest candle of the answer, good or not."""
        return min(self._open_times(), default=None)

    @property
    def last_open(self) -> datetime | None:
        """The newest candle of the answer, good or not."""
        return max(self._open_times(), default=None)

    def _open_times(self) -> list[datetime]:
        ends = [self.rows[0][0], self.rows[-1][0]] if self.rows else []
        return ends + [r.open_time for r in self.rejected if r.open_time is not None]


class InvalidCandle(ccxt.BadResponse):  # type: ignore[misc]  # ccxt has no type hints
    """The exchange sent candles that break the rules; ``page`` is the answer, checked."""

    def __init__(self, exchange: str, page: CheckedPage) -> None:
        first = page.rejected[0]
        where = f" at {first.open_time.isoformat()}" if first.open_time else ""
        super().__init__(
            f"{exchange} sent {len(page.rejected)} candle(s) that break the rules, first{where}: {first.reason}"
        )
        self.page = page


def check_candles(
    raw: Any, *, timeframe: str, since: datetime, newest_closed: datetime, window_end: datetime | None = None
) -> CheckedPage:
    """The final candles of ``raw`` (ccxt's ``fetch_ohlcv`` answer) opening from ``since`` to ``newest_closed``.

    The window asked for runs from ``since`` to ``window_end`` (windowed dialects), else to the
    candles that may still be open after ``newest_closed``. Those, and older candles, are left out,
    not judged; a candle after the window, or whose open time is not in milliseconds, breaks the rules.
    """
    if not isinstance(raw, list):
        raise ccxt.BadResponse(f"the candles answer is a {type(raw).__name__}, not a list")
    since_ms, newest_ms = to_ms(since), to_ms(newest_closed)
    end_ms = to_ms(shift_open(newest_closed, timeframe, STILL_OPEN_CANDLES + 1))
    if window_end is not None:
        end_ms = min(end_ms, to_ms(window_end))
    good: dict[int, CandleRow] = {}
    rejected: dict[int, Rejection] = {}
    placeless: list[Rejection] = []
    open_from_ms: int | None = None
    for candle in raw:
        values = tuple(candle) if isinstance(candle, list | tuple) else (candle,)
        open_ms = values[0] if values else None
        if not isinstance(open_ms, int) or isinstance(open_ms, bool):
            placeless.append(Rejection(None, "no open time", values))
            continue
        if open_ms < since_ms and open_ms >= MILLISECONDS:
            continue  # an older candle, as an exchange answering its latest ones sends
        if not since_ms <= open_ms < end_ms:
            rejection = _outside_window(values, open_ms, since_ms, end_ms, timeframe)
            if rejection.open_time is None:
                placeless.append(rejection)
            else:
                rejected[to_ms(rejection.open_time)] = rejection
            continue
        on_grid_ms = floor_open_ms(open_ms, timeframe)
        if len(values) > 6 and values[6] is False:  # the exchange says it is still open
            open_from_ms = on_grid_ms if open_from_ms is None else min(open_from_ms, on_grid_ms)
            continue
        if on_grid_ms > newest_ms:
            continue  # still open by the walk's clock
        if on_grid_ms == open_ms and _plainly_good(values):
            good[on_grid_ms] = (to_datetime(on_grid_ms), *values[1:6])
            continue
        open_time = to_datetime(on_grid_ms)
        reason = _broken_rule(values, to_datetime(open_ms), open_time)
        if reason is None:
            o, h, low, c, v = (float(value) for value in values[1:6])
            good[on_grid_ms] = (open_time, o, h, low, c, v)
        else:
            rejected[on_grid_ms] = Rejection(open_time, reason, values)
    for open_ms in rejected:
        good.pop(open_ms, None)
    final = sorted(t for t in good if open_from_ms is None or t < open_from_ms)
    return CheckedPage(
        rows=[good[t] for t in final],
        rejected=placeless + [rejected[t] for t in sorted(rejected)],
        still_open=None if open_from_ms is None else to_datetime(open_from_ms),
    )


def _outside_window(values: tuple[Any, ...], open_ms: int, since_ms: int, end_ms: int, timeframe: str) -> Rejection:
    """A candle whose open time is not in milliseconds, or after the window asked for; placed where it
    belongs when it is one of the window's open times in seconds or microseconds (never on a
    neighbour, whose good candle it would take the place of)."""
    for factor, unit in ((1000, "seconds"), (0.001, "microseconds")):
        scaled = int(open_ms * factor)
        if since_ms <= scaled < end_ms:
            reason = f"open time in {unit}, not milliseconds: {open_ms}"
            on_grid = floor_open_ms(scaled, timeframe) == scaled
            return Rejection(to_datetime(scaled) if on_grid else None, reason, values)
    if open_ms < MILLISECONDS:
        return Rejection(None, f"open time in seconds, not milliseconds: {open_ms}", values)
    return Rejection(None, f"open time {open_ms} after the window asked for", values)


def _plainly_good(values: tuple[Any, ...]) -> bool:
    """A quick yes for five floats that keep every rule of :func:`_broken_rule` (else it decides).

    Positive, finite and ordered follow from ``0 < low <= open, close <= high < inf``.
    """
    if len(values) < 6:
        return False
    o, h, low, c, v = values[1:6]
    return (
        type(o) is float
        and type(h) is float
        and type(low) is float
        and type(c) is float
        and type(v) is float
        and 0.0 < low <= o <= h < math.inf
        and low <= c <= h
        and 0.0 <= v < math.inf
    )


def _broken_rule(values: tuple[Any, ...], claimed: datetime, open_time: datetime) -> str | None:
    """The first rule the candle breaks, or None."""
    if claimed != open_time:
        return f"open time off the grid by {to_ms(claimed) - to_ms(open_time)} ms"
    if len(values) < 6:
        return "fewer than six values"
    for name, value in zip(FIELDS, values[1:6], strict=True):
        if value is None:
            return f"{name} missing"
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{name} is not a number"
        if not math.isfinite(value):
            return f"{name} is not finite"
    o, h, low, c, v = values[1:6]
    if min(o, h, low, c) <= 0:
        return "a price is zero or negative"
    if v < 0:
        return "volume is negative"
    if h < low:
        return "high is below low"
    if h < max(o, c):
        return "high is below open or close"
    if low > min(o, c):
        return "low is above open or close"
    return None


def _json_safe(values: tuple[Any, ...]) -> list[Any]:
    """Values for a JSON document: NaN and the infinities as strings (JSON has no such numbers)."""
    return [str(v) if isinstance(v, float) and not math.isfinite(v) else v for v in values]
