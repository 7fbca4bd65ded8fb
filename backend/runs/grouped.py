"""Calls that come together are written together: one statement for every call that arrived while
the previous statement was being written (group commit).

A call that arrives while no statement is being written is written at once, alone; under load, the
calls that arrive meanwhile wait for that statement and go in the next one. So a busy process sends
one statement for many runs (the tables' statement triggers run once for all of them), and an idle
one adds no delay. A statement that fails on something else than an outage is retried call by call,
so that one bad call never costs the others their answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from backend.db.outage import is_outage

logger = logging.getLogger(__name__)

MAX_CALLS_PER_STATEMENT = 200

In = TypeVar("In")
Out = TypeVar("Out")


class GroupedStatements(Generic[In, Out]):
    """``write`` takes the calls' arguments and answers each, in order, in one statement."""

    def __init__(self, write: Callable[[list[In]], Awaitable[Sequence[Out]]], *, what: str) -> None:
        self._write_all = write
        self._what = what  # as the log names it: "completing runs"
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, argument: In) -> Out:
        """The answer to ``argument``, as ``write([argument])`` would give it; raises what its statement raised."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((argument, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_while_waiting(), name=self._what)
        return await asyncio.shield(future)

    async def _write_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_CALLS_PER_STATEMENT]
                del self._waiting[:MAX_CALLS_PER_STATEMENT]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            answers = await self._write_all([argument for argument, _ in batch])
        except Exception as exc:
            if is_outage(exc) or len(batch) == 1:
                for _, future in batch:
                    _fail(future, exc)
                return
            logger.warning("%s: %d at once failed (%s); one by one", self._what, len(batch), type(exc).__name__)
            for argument, future in batch:
                try:
                    [answer] = await self._write_all([argument])
                except Exception as single:
                    _fail(future, single)
                else:
                    _answer(future, answer)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            _answer(future, answer)


def _answer(future: asyncio.Future[Out], answer: Out) -> None:
    if not future.done():  # done: its caller went away (cancelled), nobody reads it
        future.set_result(answer)


def _fail(future: asyncio.Future[Out], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
