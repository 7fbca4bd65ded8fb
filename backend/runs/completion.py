"""Runs that end together are written together (see :mod:`backend.runs.grouped`): one statement
completes every run that ended while the previous statement was being written, and the run totals'
upserts run once for all of them."""

from __future__ import annotations

from backend.db.pool import Pool
from backend.runs import repository
from backend.runs.grouped import GroupedStatements
from backend.runs.schemas import RunOutcome


class RunCompletion:
    """Completes the runs of one process, grouping those that end together."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._grouped = GroupedStatements(self._complete_all, what="completing runs")

    async def complete(self, outcome: RunOutcome) -> bool:
        """Complete the run as :func:`backend.runs.repository.complete_run` does; True when this
        closed it (or corrected it from Interrupted), False when it had ended otherwise. Raises what
        its statement raised (an outage: the caller tries again)."""
        return await self._grouped(outcome)

    async def _complete_all(self, outcomes: list[RunOutcome]) -> list[bool]:
        closed = await repository.complete_runs(self._pool, outcomes=outcomes)
        return [outcome.run_id in closed for outcome in outcomes]
