"""Runs that end together are written together: one statement completes every run that ended while
the previous statement was being written (group commit).

A run that ends while no completion is being written is written at once, alone; under load, the
runs that end meanwhile wait for that statement and go in the next one. So a busy process sends
one statement for many runs (the table's statement triggers and the run totals' upserts run once
for all of them), and an idle one adds no delay. A statement that fails on something else than an
outage is retried run by run, so that one bad outcome never costs the others theirs.
"""

from __future__ import annotations

import asyncio
import logging

from backend.db.outage import is_outage
from backend.db.pool import Pool
from backend.runs import repository
from backend.runs.schemas import RunOutcome

logger = logging.getLogger(__name__)

MAX_RUNS_PER_STATEMENT = 200


class RunCompletion:
    """Completes the runs of one process, grouping those that end together."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._waiting: list[tuple[RunOutcome, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def complete(self, outcome: RunOutcome) -> bool:
        """Complete the run as :func:`backend.runs.repository.complete_run` does; True when this
        closed it (or corrected it from Interrupted), False when it had ended otherwise. Raises what
        its statement raised (an outage: the caller tries again)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_while_waiting(), name="run completion")
        return await asyncio.shield(future)

    async def _write_while_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_RUNS_PER_STATEMENT]
                del self._waiting[:MAX_RUNS_PER_STATEMENT]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[RunOutcome, asyncio.Future[bool]]]) -> None:
        try:
            closed = await repository.complete_runs(self._pool, outcomes=[outcome for outcome, _ in batch])
        except Exception as exc:
            if is_outage(exc) or len(batch) == 1:
                for _, future in batch:
                    _settle(future, exc=exc)
                return
            logger.warning("completing %d runs at once failed (%s); one by one", len(batch), type(exc).__name__)
            for outcome, future in batch:
                try:
                    _settle(future, result=bool(await repository.complete_runs(self._pool, outcomes=[outcome])))
                except Exception as single:
                    _settle(future, exc=single)
            return
        for outcome, future in batch:
            _settle(future, result=outcome.run_id in closed)


def _settle(future: asyncio.Future[bool], *, result: bool = False, exc: BaseException | None = None) -> None:
    if future.done():  # its caller went away (cancelled): nobody reads it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
