"""What the schedulers are doing, read from PostgreSQL so any process answers the same.

``GET /status`` shows it as ``scheduler`` and takes its ``active_jobs`` from it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from backend.db.pool import Connection, Pool

READ_SCHEDULER_STATUS = """
SELECT
    (SELECT backend FROM scheduler_heartbeats
     WHERE expires_at > now() ORDER BY heartbeat_at DESC LIMIT 1) AS backend,
    (SELECT count(*) FROM scheduler_heartbeats WHERE expires_at > now()) AS schedulers_alive,
    (SELECT extract(epoch FROM now() - max(heartbeat_at))::double precision
     FROM scheduler_heartbeats) AS heartbeat_age_seconds,
    (SELECT min(next_run_at) FROM data_collection_configs WHERE enabled) AS next_run_at,
    (SELECT count(*) FROM data_collection_configs WHERE enabled) AS scheduled_configs,
    (SELECT count(*) FROM job_execution_logs WHERE status = 'running') AS runs_in_progress,
    (SELECT count(*) FROM job_execution_logs AS log
     LEFT JOIN data_collection_configs AS config ON config.id = log.config_id
     WHERE log.status = 'running' AND config.enabled IS NOT TRUE) AS unscheduled_runs_in_progress
"""


class SchedulerStatus(msgspec.Struct, kw_only=True):
    """The scheduler's state, as ``GET /status`` shows it under ``scheduler``.

    - ``backend``: ``inprocess`` or ``arq``, of the scheduler that beat most recently; null when none is alive.
    - ``alive``: at least one scheduler's heartbeat lease is running (each beats every
      ``SCHEDULER_HEARTBEAT_SECONDS`` and is presumed dead after three missed beats).
    - ``schedulers_alive``: how many processes are scheduling (web dynos in-process, or arq workers).
    - ``heartbeat_age_seconds``: seconds since the most recent heartbeat of any scheduler; null if none ever beat.
    - ``next_run_at``: the earliest next slot of an enabled config (in the past when a slot is due
      and waiting, e.g. for the previous run of that config to end); null without enabled configs.
    - ``scheduled_configs``: enabled configs, each a job on the schedule.
    - ``runs_in_progress``: execution logs still ``running`` (collections and system jobs, any trigger).
    - ``active_jobs``: jobs that are live now = enabled configs (each scheduled)
      + runs in progress that belong to no enabled config (a manual run of a disabled config, a run
      of a config deleted meanwhile, the retention job). A run of an enabled config is counted once.
    """

    backend: str | None
    alive: bool
    schedulers_alive: int
    heartbeat_age_seconds: float | None
    next_run_at: datetime | None
    scheduled_configs: int
    runs_in_progress: int
    active_jobs: int


async def read_scheduler_status(db: Pool | Connection) -> SchedulerStatus:
    """One query over the heartbeats, the configs and the running logs."""
    row = await db.fetchrow(READ_SCHEDULER_STATUS)
    assert row is not None
    return SchedulerStatus(
        backend=row["backend"],
        alive=row["schedulers_alive"] > 0,
        schedulers_alive=row["schedulers_alive"],
        heartbeat_age_seconds=row["heartbeat_age_seconds"],
        next_run_at=row["next_run_at"],
        scheduled_configs=row["scheduled_configs"],
        runs_in_progress=row["runs_in_progress"],
        active_jobs=row["scheduled_configs"] + row["unscheduled_runs_in_progress"],
    )
