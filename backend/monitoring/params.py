"""Query-parameter values Litestar cannot check by type alone; errors are 400s naming the parameter."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from backend.monitoring.schemas import BUCKET_MINUTES, MAX_TIMESERIES_POINTS
from backend.web.params import parse_time


def started_range(start_date: str | None, end_date: str | None) -> tuple[datetime | None, datetime | None]:
    """[from, before) of ``started_at``: both ends inclusive; a date-only ``end_date`` covers that whole day.

    An end at the last representable day (``9999-12-31``) has no bound after it: no upper limit.
    A start after the end is an empty range.
    """
    started_from = parse_time("start_date", start_date)[0] if start_date is not None else None
    started_before = None
    if end_date is not None:
        end, is_date = parse_time("end_date", end_date)
        try:
            started_before = end + (timedelta(days=1) if is_date else timedelta(microseconds=1))
        except OverflowError:
            started_before = None
    return started_from, started_before


def timeseries_window(*, hours: int, bucket: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of whole UTC buckets covering the last ``hours``, the current bucket last; at
    most the newest ``MAX_TIMESERIES_POINTS`` buckets."""
    minutes = BUCKET_MINUTES[bucket]
    points = min(math.ceil(hours * 60 / minutes), MAX_TIMESERIES_POINTS)
    width = timedelta(minutes=minutes)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    current = epoch + (now - epoch) // width * width
    return current - (points - 1) * width, current + width
