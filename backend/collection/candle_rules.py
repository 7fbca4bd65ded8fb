"""The rules a candle keeps to be stored, and a page of candles as ccxt handed it over, checked.

A candle is stored only when its six values are numbers, finite, its prices positive, its volume
not negative, its high the highest and its low the lowest of its prices, and its open time on the
timeframe's grid. A page that carries a candle breaking them raises :class:`InvalidCandle`: the
walk asks again, and keeps only the good candles if the exchange sends the same again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ccxt

from backend.collection.repository import CandleRow
from backend.collection.timeframes import floor_open, to_datetime, to_ms

FIELDS = ("open", "high", "low", "close", "volume")


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


def check_candles(raw: Any, *, timeframe: str, since: datetime, newest_closed: datetime) -> CheckedPage:
    """The candles of ``raw`` (ccxt's ``fetch_ohlcv`` answer) opening from ``since`` to ``newest_closed``.

    Candles outside that range are left out, not judged (the still-open candle, older ones).
    """
    if not isinstance(raw, list):
        raise ccxt.BadResponse(f"the candles answer is a {type(raw).__name__}, not a list")
    good: dict[datetime, CandleRow] = {}
    rejected: dict[datetime, Rejection] = {}
    placeless: list[Rejection] = []
    for candle in raw:
        values = tuple(candle) if isinstance(candle, list | tuple) else (candle,)
        open_ms = values[0] if values else None
        if not isinstance(open_ms, int) or isinstance(open_ms, bool):
            placeless.append(Rejection(None, "no open time", values))
            continue
        claimed = to_datetime(open_ms)
        open_time = floor_open(claimed, timeframe)
        if not since <= open_time <= newest_closed:
            continue
        reason = _broken_rule(values, claimed, open_time)
        if reason is None:
            o, h, low, c, v = (float(value) for value in values[1:6])
            good[open_time] = (open_time, o, h, low, c, v)
        else:
            rejected[open_time] = Rejection(open_time, reason, values)
    for open_time in rejected:
        good.pop(open_time, None)
    return CheckedPage(
        rows=[good[t] for t in sorted(good)],
        rejected=placeless + [rejected[t] for t in sorted(rejected)],
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
