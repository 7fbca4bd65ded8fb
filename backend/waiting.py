"""Waiting with a bound, and stopping background tasks, without ever losing a cancellation.

Python 3.11's ``asyncio.wait_for`` returns the awaited result when it is cancelled in the same
instant that result arrives: the cancellation is lost, and a loop that its owner cancels at
shutdown while an event is being set (a NOTIFY, a run ending) goes on forever, so the shutdown
never ends. ``asyncio.timeout`` counts cancellations and has no such gap: waits here use it, and
the project's lint forbids ``asyncio.wait_for``.

Likewise ``with suppress(CancelledError): await task`` after ``task.cancel()`` also swallows a
cancellation of the caller itself; :func:`cancel_and_wait` does not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set, at most ``seconds``: True when it was set, False when the time ran out."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, expected: tuple[type[BaseException], ...] = ()
) -> None:
    """Cancel ``tasks`` and return once every one has ended. A task that ended on an error instead
    (other than the ``expected`` ones) is logged with its traceback, not raised, so that one task's
    failure never keeps the others from stopping. A cancellation of the caller still raises."""
    pending = set(tasks)
    for task in pending:
        task.cancel()
    if not pending:
        return
    await asyncio.wait(pending)
    for task in pending:
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None and not isinstance(error, expected):
            logger.error("%s ended on an error while it was being stopped", task.get_name(), exc_info=error)
