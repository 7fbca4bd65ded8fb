"""Query-parameter values Litestar cannot check by type alone; errors are 400s naming the parameter."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

from backend.monitoring.schemas import BUCKET_MINUTES, MAX_TIMESERIES_POINTS
from backend.web.params import invalid_query, to_utc

# "+02:00" sent unencoded in a URL arrives as " 02:00"
OFFSET_WITHOUT_PLUS = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def parse_time(name: str, raw: str) -> tuple[datetime, bool]:
    """An ISO 8601 date or date-time as a UTC-aware datetime (no zone means UTC), and whether it was a date."""
    text = OFFSET_WITHOUT_PLUS.sub(r"\1+\2", raw.strip())
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC), True
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_query(
            name, f"expected an ISO 8601 date or date-time such as 2024-05-01T12:00:00Z, got {raw!r}"
        ) from None
    return to_utc(name, value), False


def started_range(start_date: str | None, end_date: str | None) -> tuple[datetime | None, datetime | None]:
    """[from, before) of ``started_at``: both ends inclusive; a date-only ``end_date`` covers that whole day.

    An end at the last representable day (``9999-12-31``) has no bound after it: no upper limit.
    """
    started_from = parse_time("start_date", start_date)[0] if start_date is not None else None
    started_before = None
    if end_date is not None:
        end, is_date = parse_time("end_date", end_date)
        try:
            started_before = end + (timedelta(days=1) if is_date else timedelta(microseconds=1))
        except OverflowError:
            started_before = None
    if started_from is not None and started_before is not None and started_from >= started_before:
        raise invalid_query("start_date", "must not be after end_date")
    return started_from, started_before


def timeseries_window(*, hours: int, bucket: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of whole UTC buckets covering the last ``hours``, the current bucket last."""
    minutes = BUCKET_MINUTES[bucket]
    points = math.ceil(hours * 60 / minutes)
    if points > MAX_TIMESERIES_POINTS:
        raise invalid_query(
            "bucket",
            f"{hours} hours in {bucket} buckets is {points} points, more than {MAX_TIMESERIES_POINTS}; "
            "choose a larger bucket or fewer hours",
        )
    width = timedelta(minutes=minutes)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    current = epoch + (now - epoch) // width * width
    return current - (points - 1) * width, current + width
