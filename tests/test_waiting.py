"""Stopping background tasks: every task stopped, an error of one logged (not raised, not lost), and a
cancellation of whoever stops them still honoured."""

from __future__ import annotations

import asyncio
import logging

import pytest

from backend.waiting import cancel_and_wait, wait_for_event


async def _fails_when_stopped() -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        raise ValueError("cleanup failed") from None


async def test_stopping_tasks_logs_the_error_of_one_and_still_stops_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = asyncio.create_task(_fails_when_stopped(), name="failing task")
    quiet = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)

    await cancel_and_wait([failing, quiet])

    assert quiet.cancelled()
    [record] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert record.getMessage() == "failing task ended on an error while it was being stopped"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


async def test_an_expected_error_of_a_stopped_task_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    failing = asyncio.create_task(_fails_when_stopped())
    await asyncio.sleep(0)

    await cancel_and_wait([failing], expected=(ValueError,))

    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_whoever_stops_the_tasks_can_itself_be_cancelled() -> None:
    stubborn_stop = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await stubborn_stop.wait()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait([task]))
    await asyncio.sleep(0.01)

    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    stubborn_stop.set()
    await asyncio.wait({task})


async def test_waiting_for_an_event_says_whether_it_was_set() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.01) is False
    event.set()
    assert await wait_for_event(event, 0.01) is True
