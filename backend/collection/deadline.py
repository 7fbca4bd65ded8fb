"""A deadline on the event loop's clock for work that must answer in time (a re-verification inside
a web request): what runs under :func:`until` is cut when the deadline comes, as :class:`OutOfTime`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class OutOfTime(Exception):
    """The deadline came before the work under :func:`until` ended."""


def deadline_in(seconds: float) -> float:
    """The event loop's time ``seconds`` from now."""
    return asyncio.get_running_loop().time() + seconds


@asynccontextmanager
async def until(deadline: float | None) -> AsyncIterator[None]:
    """Cancel what runs inside at ``deadline`` (None: never) and raise :class:`OutOfTime` instead;
    a ``TimeoutError`` of its own goes through as it is."""
    try:
        async with asyncio.timeout_at(deadline) as limit:
            yield
    except TimeoutError:
        if limit.expired():
            raise OutOfTime from None
        raise
