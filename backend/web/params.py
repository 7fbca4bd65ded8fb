"""Parameter types and checks shared by every route: ids and offsets within PostgreSQL's bigint,
times in ISO 8601 converted to UTC. Errors are 400s naming the parameter.

A time parameter is exactly what its published schema says: an RFC 3339 ``date`` (``2024-05-01``,
the day's start), an RFC 3339 ``date-time`` (``2024-05-01T12:00:00Z``, ``...+02:00``), or a
date-time without a zone, which is UTC (``2024-05-01T12:00``). Nothing else is read as a time:
not ``0.0``, not a week date, not a bare year.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar.exceptions import ValidationException
from litestar.params import Parameter, ParameterKwarg

BIGINT_MAX = 2**63 - 1

Skip = Annotated[int, Parameter(ge=0, le=BIGINT_MAX, description="Rows to skip")]

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_TIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<zone>[Zz]|[+-]\d{2}:\d{2})?"
)
# "+02:00" sent unencoded in a URL arrives as " 02:00"
OFFSET_WITHOUT_PLUS = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")
EXTRA_FRACTION_DIGITS = re.compile(r"(\.\d{6})\d+")
# a date-time without a zone, as the schema writes it: only real calendar days (29 February aside)
CALENDAR_DAY = (
    r"(?:[1-9]\d{3}|0(?:[1-9]\d{2}|0[1-9]\d|00[1-9]))-"
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))"
)
LOCAL_DATE_TIME = rf"^{CALENDAR_DAY}[Tt](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{{1,6}})?)?$"
# a date-time in a request body, as msgspec reads it: seconds required, the zone optional (UTC)
BODY_DATE_TIME = (
    rf"^{CALENDAR_DAY}[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{{1,6}})?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)?$"
)
TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": LOCAL_DATE_TIME},
    ]
}
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def resource_id(description: str) -> ParameterKwarg:
    """An id in a path or a filter: 1 to the largest bigint."""
    kwarg: ParameterKwarg = Parameter(ge=1, le=BIGINT_MAX, description=description)
    return kwarg


def time_parameter(description: str) -> ParameterKwarg:
    """A query parameter holding a time (see the module's docstring); read it with :func:`parse_time`."""
    kwarg: ParameterKwarg = Parameter(description=description, schema_extra=TIME_SCHEMA)
    return kwarg


def invalid_query(name: str, message: str) -> ValidationException:
    """A 400 about query parameter ``name``: ``detail`` starts with it and ``extra`` names it."""
    return ValidationException(f"{name}: {message}", extra=[{"message": message, "key": name, "source": "query"}])


def to_utc(moment: datetime) -> datetime:
    """``moment`` as a UTC-aware datetime (no zone means UTC); an instant before year 1 or after
    year 9999 in UTC is the first or last one that can be stored."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return EARLIEST if moment.year == 1 else LATEST


def parse_time(name: str, raw: str) -> tuple[datetime, bool]:
    """The time query parameter ``name`` as a UTC-aware datetime, and whether it was a date alone."""
    text = OFFSET_WITHOUT_PLUS.sub(r"\1+\2", raw)
    try:
        if DATE.fullmatch(text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC), True
        if parts := DATE_TIME.fullmatch(text):
            offset = "+00:00" if parts["zone"] in (None, "Z", "z") else parts["zone"]
            clock = EXTRA_FRACTION_DIGITS.sub(r"\1", parts["time"])
            return to_utc(datetime.fromisoformat(f"{parts['date']}T{clock}{offset}")), False
    except ValueError:
        pass
    raise invalid_query(
        name, f"expected an ISO 8601 date or date-time such as 2024-05-01T12:00:00Z, got {raw[:60]!r}"
    ) from None
