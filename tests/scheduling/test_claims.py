"""A claim starts the runs of all its due slots in one transaction; a slot that already ran is
left out and the others start."""

from __future__ import annotations

from backend.db.pool import Pool
from backend.scheduling.runs import claim_and_start_runs
from tests.scheduling.conftest import MakeConfig

DUE_A_SECOND_AGO = """
UPDATE data_collection_configs
SET next_run_at = date_trunc('second', now()) - interval '1 second',
    schedule_anchor_at = date_trunc('second', now()) - interval '1 second'
WHERE id = ANY($1::bigint[])
"""
SLOT_ALREADY_RAN = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, status, trigger, scheduled_for, finished_at)
SELECT 'collect_data_' || id, 'data_collection', id, 'success', 'schedule', next_run_at, now()
FROM data_collection_configs WHERE id = $1
"""
RUNS = "SELECT config_id, status, scheduled_for FROM job_execution_logs WHERE config_id = ANY($1::bigint[]) ORDER BY id"


async def test_a_claim_starts_every_due_slot_but_one_that_already_ran(pool: Pool, make_config: MakeConfig) -> None:
    ran, first, second = [await make_config(interval_minutes=60) for _ in range(3)]
    await pool.execute(DUE_A_SECOND_AGO, [ran, first, second])
    await pool.execute(SLOT_ALREADY_RAN, ran)
    slot = await pool.fetchval("SELECT next_run_at FROM data_collection_configs WHERE id = $1", ran)

    started = await claim_and_start_runs(pool, limit=10, interval_unit_seconds=60)

    assert sorted(run.config_id for run in started) == sorted([first, second])
    assert {run.scheduled_for for run in started} == {slot}
    runs = [tuple(row) for row in await pool.fetch(RUNS, [ran, first, second])]
    assert sorted(runs, key=lambda row: (row[0], row[1])) == sorted(
        [(ran, "success", slot), (first, "running", slot), (second, "running", slot)], key=lambda row: (row[0], row[1])
    )
    next_runs = await pool.fetch(
        "SELECT next_run_at FROM data_collection_configs WHERE id = ANY($1::bigint[])", [ran, first, second]
    )
    assert all(row["next_run_at"] > slot for row in next_runs)  # the claim moved past every slot, also the one that ran
