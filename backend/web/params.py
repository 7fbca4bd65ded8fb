"""Parameter types and checks shared by every route: ids and offsets within PostgreSQL's bigint,
times converted to UTC within what can be stored. Errors are 400s naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar.exceptions import ValidationException
from litestar.params import Parameter, ParameterKwarg

BIGINT_MAX = 2**63 - 1

Skip = Annotated[int, Parameter(ge=0, le=BIGINT_MAX, description="Rows to skip")]


def resource_id(description: str) -> ParameterKwarg:
    """An id in a path or a filter: 1 to the largest bigint."""
    kwarg: ParameterKwarg = Parameter(ge=1, le=BIGINT_MAX, description=description)
    return kwarg


def invalid_query(name: str, message: str) -> ValidationException:
    """A 400 about query parameter ``name``: ``detail`` starts with it and ``extra`` names it."""
    return ValidationException(f"{name}: {message}", extra=[{"message": message, "key": name, "source": "query"}])


def to_utc(name: str, moment: datetime) -> datetime:
    """``moment`` as a UTC-aware datetime (no zone means UTC); 400 when its UTC instant falls
    outside years 1 to 9999."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid_query(name, f"{moment.isoformat()} is outside 0001-01-01 to 9999-12-31 in UTC") from None
