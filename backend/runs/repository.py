"""SQL for the life of one run in ``job_execution_logs``: queued, started, heartbeat, complete, or discard.

Every function takes a pool or a connection. A scheduled run's ``running`` row is inserted by the
statement that claims its slot (``backend.scheduling.repository``), so the two commit together.

Lock order, everywhere: a config's row, then log rows, then what the tables' triggers write at the
end of a statement (the per-minute counts, the data versions). A claim locks configs and inserts
their logs; a run's start locks its config, then its log; its heartbeat and its end lock the log
only; deleting configs (one or many, in one statement) locks them, then detaches their logs. So no
two of them wait for each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from backend.db.pool import Connection, Pool
from backend.errors import ConflictError, NotFoundError
from backend.runs.schemas import FinalStatus, RunConfig, RunOutcome, Trigger
from backend.runs.totals import COUNT_ENDED_RUNS, ENDED_COLUMNS

# The row copies symbol and exchange so the log stays readable after the config is deleted.
# A unique key (one running run per config, one run per scheduled slot) makes it insert nothing,
# without aborting the caller's transaction; WHY_NOT_STARTED then says which.
# The run is queued: status 'running' (as the API shows it) without a heartbeat until a process
# begins it (BEGIN_RUNS_STEPS), so that stale-run detection never mistakes a queued run for a dead one.
START_RUN = """
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, scheduled_for, missed_slots)
SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, 'running', $2, $3, $4
FROM data_collection_configs WHERE id = $1
ON CONFLICT DO NOTHING
RETURNING id
"""
WHY_NOT_STARTED = """
SELECT EXISTS (SELECT FROM data_collection_configs WHERE id = $1) AS config_exists,
       (SELECT id FROM job_execution_logs WHERE config_id = $1 AND status = 'running') AS running_run_id
"""
# A process begins queued runs (those that start together, in one statement): for each run still
# running whose config exists (and is enabled, for a scheduled run), the config (what a run reads of
# it), and then the run's start: its started_at and first heartbeat, and its config's last_run_at (the
# config remembers its latest start). A run that is not running gives no row of ``run``; one whose
# config is gone or disabled, no row of ``config`` (nothing of it is written). The configs' rows are
# locked first, in id order (see the lock order above).
BEGIN_RUNS_STEPS = """
WITH run AS (
    SELECT id AS run_id, config_id, trigger FROM job_execution_logs
    WHERE id = ANY($1::bigint[]) AND status = 'running'
), locked AS MATERIALIZED (
    SELECT config.id FROM data_collection_configs AS config
    WHERE config.id IN (SELECT config_id FROM run)
    ORDER BY config.id
    FOR UPDATE
), config AS (
    UPDATE data_collection_configs AS config SET last_run_at = now()
    FROM run
    WHERE config.id = run.config_id AND config.id IN (SELECT id FROM locked)
      AND (config.enabled OR run.trigger <> 'schedule')
    RETURNING run.run_id, config.id, config.symbol, config.exchange, config.timeframes, config.backfill_days
), started AS (
    UPDATE job_execution_logs SET started_at = now(), heartbeat_at = now()
    WHERE id IN (SELECT run_id FROM config) AND status = 'running'
)"""
BEGIN_RUN = f"{BEGIN_RUNS_STEPS}\nSELECT config.* FROM run LEFT JOIN config USING (run_id)"
REFRESH_HEARTBEAT = "UPDATE job_execution_logs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'"
# The run's own process has the last word: a run closed meanwhile as Interrupted (its heartbeat
# stopped during a database outage longer than STALE_RUN_SECONDS) gets its real outcome. The run
# totals count it in the same statement (once: see backend.runs.totals). Many runs at once (runs
# that ended together): one round trip, and the statement's triggers and the run totals' upserts
# run once for all of them. Rows are locked in id order.
COMPLETE_RUNS = f"""
WITH outcome AS (
    SELECT * FROM unnest(
        $1::bigint[], $2::text[], $3::numeric[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[]
    ) AS o(run_id, new_status, new_duration, new_records, new_error_message, new_error_type, new_metadata,
           new_error_cause)
), previous AS (
    SELECT id AS previous_id, status AS previous_status FROM job_execution_logs
    WHERE id IN (SELECT run_id FROM outcome) AND (status = 'running' OR error_type = 'Interrupted')
    ORDER BY id
    FOR UPDATE
), ended AS (
    UPDATE job_execution_logs
    SET status = new_status, finished_at = greatest(now(), started_at), duration_seconds = round(new_duration, 3),
        records_collected = new_records, error_message = new_error_message, error_type = new_error_type,
        metadata = new_metadata::jsonb, heartbeat_at = now(), error_cause = new_error_cause
    FROM previous JOIN outcome ON run_id = previous_id
    WHERE id = previous_id
    RETURNING id, previous_status = 'running' AS first_end, {ENDED_COLUMNS}
), {COUNT_ENDED_RUNS}
SELECT id FROM ended
"""
DELETE_RUN = "DELETE FROM job_execution_logs WHERE id = $1"


async def start_run(
    db: Pool | Connection,
    *,
    config_id: int,
    trigger: Trigger,
    scheduled_for: datetime | None = None,
    missed_slots: int = 0,
) -> int:
    """Insert the ``running`` row of a new run of ``config_id`` (queued: no heartbeat yet) and return its id.

    Raises :class:`ConflictError` (409) when the config already has a running run or the slot
    ``scheduled_for`` already ran, and :class:`NotFoundError` when the config does not exist. The
    caller's transaction stays usable either way, except when the config is deleted by another
    transaction while the row is inserted (a claim holds its configs' locks, so never there).
    """
    try:
        run_id: int | None = await db.fetchval(START_RUN, config_id, trigger, scheduled_for, missed_slots)
    except asyncpg.ForeignKeyViolationError:  # the config was deleted while the row was being inserted
        raise NotFoundError(f"Config {config_id} not found") from None
    if run_id is not None:
        return run_id
    raise await why_not_started(db, config_id=config_id, scheduled_for=scheduled_for)


async def why_not_started(
    db: Pool | Connection, *, config_id: int, scheduled_for: datetime | None = None
) -> NotFoundError | ConflictError:
    """Why a run of ``config_id`` (for the slot ``scheduled_for``) did not start: the error to raise or log."""
    why = await db.fetchrow(WHY_NOT_STARTED, config_id)
    assert why is not None
    if not why["config_exists"]:
        return NotFoundError(f"Config {config_id} not found")
    if why["running_run_id"] is not None:
        return ConflictError(f"Config {config_id} is already running (run {why['running_run_id']})")
    return ConflictError(f"Config {config_id} already ran its slot {scheduled_for}")


async def begin_run(db: Pool | Connection, *, run_id: int) -> RunConfig | Literal["not running", "no config"]:
    """Start the queued run ``run_id`` (its ``started_at``, first heartbeat, its config's ``last_run_at``)
    and return what it collects; "not running" once it ended (or never existed), "no config" when its
    config is gone, or disabled and the run scheduled (then nothing was written)."""
    return config_of_begun_run(await db.fetchrow(BEGIN_RUN, [run_id]))


def config_of_begun_run(row: asyncpg.Record | None) -> RunConfig | Literal["not running", "no config"]:
    """What a statement beginning runs (``BEGIN_RUNS_STEPS``, then the config's columns) answered of
    one run: no row, or a row without a config."""
    if row is None:
        return "not running"
    if row["id"] is None:
        return "no config"
    return msgspec.convert({name: row[name] for name in RunConfig.__struct_fields__}, RunConfig)


async def refresh_heartbeat(db: Pool | Connection, *, run_id: int) -> None:
    """Show that the run is alive; a run whose heartbeat stops is closed as Interrupted by a scheduler."""
    await db.execute(REFRESH_HEARTBEAT, run_id)


async def complete_run(
    db: Pool | Connection,
    *,
    run_id: int,
    status: FinalStatus,
    duration_seconds: float,
    records_collected: int,
    error_message: str | None = None,
    error_type: str | None = None,
    error_cause: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Close a running run (or correct one closed as Interrupted); False when it had ended otherwise."""
    outcome = RunOutcome(
        run_id=run_id,
        status=status,
        duration_seconds=duration_seconds,
        records_collected=records_collected,
        error_message=error_message,
        error_type=error_type,
        error_cause=error_cause,
        metadata=metadata or {},
    )
    return bool(await complete_runs(db, outcomes=[outcome]))


async def complete_runs(db: Pool | Connection, *, outcomes: Sequence[RunOutcome]) -> set[int]:
    """:func:`complete_run` for each outcome, in one statement; the ids of the runs it closed (or corrected)."""
    rows = await db.fetch(
        COMPLETE_RUNS,
        [outcome.run_id for outcome in outcomes],
        [outcome.status for outcome in outcomes],
        [outcome.duration_seconds for outcome in outcomes],
        [outcome.records_collected for outcome in outcomes],
        [outcome.error_message for outcome in outcomes],
        [outcome.error_type for outcome in outcomes],
        [msgspec.json.encode(outcome.metadata).decode() for outcome in outcomes],
        [outcome.error_cause for outcome in outcomes],
    )
    return {row["id"] for row in rows}


async def delete_run(db: Pool | Connection, *, run_id: int) -> None:
    """Remove a run that did nothing (its config was deleted or disabled before it began)."""
    await db.execute(DELETE_RUN, run_id)
