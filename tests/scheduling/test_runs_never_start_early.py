"""A scheduled run never starts before its slot by the wall clock of the process that runs it,
in-process or on an arq worker, also when that clock is behind the database's (which claims slots)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.db.pool import Pool
from backend.runs.repository import start_run
from backend.scheduling.runs import Clock
from backend.scheduling.worker import collect
from tests.scheduling.conftest import MakeConfig, StandInJob, StartScheduler, eventually

LAG = timedelta(milliseconds=200)


def lagging_clock() -> datetime:
    """The process's wall clock, ``LAG`` behind the database server's."""
    return datetime.now(UTC) - LAG


class ClockAtStart(StandInJob):
    """The stand-in job, noting what the clock read when each run started."""

    def __init__(self, pool: Pool, clock: Clock) -> None:
        super().__init__(pool)
        self.clock = clock
        self.started_at: dict[int, datetime] = {}

    async def __call__(self, run_id: int) -> None:
        self.started_at[run_id] = self.clock()
        await super().__call__(run_id)


async def _scheduled_for(pool: Pool, run_id: int) -> datetime:
    slot: datetime = await pool.fetchval("SELECT scheduled_for FROM job_execution_logs WHERE id = $1", run_id)
    return slot


async def test_the_in_process_scheduler_starts_a_run_at_its_slot_by_its_own_clock(
    pool: Pool, make_config: MakeConfig, start_scheduler: StartScheduler
) -> None:
    job = ClockAtStart(pool, lagging_clock)
    await make_config(interval_minutes=60)

    await start_scheduler(job, clock=lagging_clock)
    await eventually(lambda: _any(job.started_at))

    [(run_id, started)] = job.started_at.items()
    assert started >= await _scheduled_for(pool, run_id)


async def test_an_arq_worker_starts_a_run_at_its_slot_by_its_own_clock(pool: Pool, make_config: MakeConfig) -> None:
    job = ClockAtStart(pool, lagging_clock)
    slot = datetime.now(UTC)  # due by the database's clock: the tick claimed it
    run_id = await start_run(pool, config_id=await make_config(), trigger="schedule", scheduled_for=slot)

    await collect({"pool": pool, "run_job": job, "clock": lagging_clock}, run_id, slot)

    assert job.started_at[run_id] >= slot


async def _any(items: dict[int, datetime]) -> bool:
    return bool(items)
