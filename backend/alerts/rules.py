"""The rules: what each one reads from the database, and the conditions that hold now.

- ``config_failing``: the last ``ALERT_FAILED_RUNS`` finished runs of an enabled config all failed.
- ``series_stale``: a timeframe of an enabled config is stale, as freshness judges it (its newest
  candle is older than the candle's length + two intervals + ``FRESHNESS_MARGIN_SECONDS``).
- ``exchange_paused``: an exchange has held every request (a pause after a rate limit, or a ban)
  for ``ALERT_EXCHANGE_PAUSED_SECONDS`` without a break.
- ``slots_missed``: a config's scheduled runs that started in the last
  ``ALERT_MISSED_SLOTS_WINDOW_SECONDS`` collapsed at least ``ALERT_MISSED_SLOTS`` missed slots.
- ``scheduler_silent``: a scheduler (a web process's in-process scheduler, or an arq worker) has
  not beaten for ``ALERT_SCHEDULER_SILENT_SECONDS`` without shutting down, and no scheduler of its
  kind started since; or configs are enabled and no scheduler at all has beaten for that long.

Any process reads them (the one that won the evaluation), so a process whose own scheduler died
still raises the alert about it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backend.alerts.schemas import Condition
from backend.collection.exchange_states import read_exchange_states
from backend.db.pool import Connection, Pool
from backend.monitoring.freshness import read_series_freshness
from backend.settings import Settings

# Each enabled config whose latest $1 finished runs all failed, with the latest error (and its cause).
FAILING_CONFIGS = """
SELECT config.id, config.symbol, config.exchange, latest.failed, latest.error_type, latest.error_message,
       latest.error_cause
FROM data_collection_configs AS config
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE run.status = 'failed') AS failed, count(*) AS finished,
           (array_agg(run.error_type ORDER BY run.started_at DESC, run.id DESC))[1] AS error_type,
           (array_agg(run.error_message ORDER BY run.started_at DESC, run.id DESC))[1] AS error_message,
           (array_agg(run.error_cause ORDER BY run.started_at DESC, run.id DESC))[1] AS error_cause
    FROM (
        SELECT id, status, error_type, error_message, error_cause, started_at FROM job_execution_logs AS log
        WHERE log.config_id = config.id AND log.status <> 'running'
        ORDER BY log.started_at DESC, log.id DESC
        LIMIT $1
    ) AS run
) AS latest
WHERE config.enabled AND latest.finished = $1 AND latest.failed = $1
ORDER BY config.id
"""
# Each config whose scheduled runs that started in the last $1 seconds collapsed at least $2 slots.
MISSED_SLOTS = """
SELECT log.config_id AS id, config.symbol, config.exchange, sum(log.missed_slots)::integer AS missed,
       count(*)::integer AS runs, min(log.started_at) AS first_at
FROM job_execution_logs AS log
JOIN data_collection_configs AS config ON config.id = log.config_id
WHERE log.missed_slots > 0 AND log.started_at >= now() - make_interval(secs => $1) AND log.trigger = 'schedule'
GROUP BY log.config_id, config.symbol, config.exchange
HAVING sum(log.missed_slots) >= $2
ORDER BY log.config_id
"""
SCHEDULERS = """
SELECT scheduler_id, backend, started_at, heartbeat_at,
       EXISTS (SELECT FROM data_collection_configs WHERE enabled) AS configs_enabled
FROM (SELECT 1) AS one
LEFT JOIN scheduler_heartbeats ON true
ORDER BY heartbeat_at
"""
ERROR_IN_SUMMARY = 200  # characters of the latest error a summary quotes


async def read_conditions(db: Pool | Connection, *, settings: Settings, now: datetime) -> list[Condition]:
    """Every condition that holds now, of every rule."""
    return [
        *await failing_configs(db, failed_runs=settings.alert_failed_runs),
        *await missed_slots(
            db, window_seconds=settings.alert_missed_slots_window_seconds, at_least=settings.alert_missed_slots
        ),
        *await silent_schedulers(db, silent_seconds=settings.alert_scheduler_silent_seconds, now=now),
        *await stale_series(db, settings=settings, now=now),
        *await paused_exchanges(db, paused_seconds=settings.alert_exchange_paused_seconds),
    ]


async def failing_configs(db: Pool | Connection, *, failed_runs: int) -> list[Condition]:
    conditions = []
    for row in await db.fetch(FAILING_CONFIGS, failed_runs):
        # the cause in a few words; a run logged without one is quoted by its message
        error = row["error_cause"] or _shortened(
            f"{row['error_type'] or 'Error'}: {row['error_message'] or 'no message'}"
        )
        runs = "the last run" if failed_runs == 1 else f"the last {failed_runs} runs"
        conditions.append(
            Condition(
                rule="config_failing",
                subject=f"config:{row['id']}",
                summary=f"{row['symbol']} on {row['exchange']} (config {row['id']}): {runs} failed; latest: {error}",
                details={
                    "config_id": row["id"],
                    "symbol": row["symbol"],
                    "exchange": row["exchange"],
                    "failed_runs": row["failed"],
                    "error_type": row["error_type"],
                    "error_message": row["error_message"],
                    "error_cause": row["error_cause"],
                },
            )
        )
    return conditions


async def missed_slots(db: Pool | Connection, *, window_seconds: int, at_least: int) -> list[Condition]:
    conditions = []
    minutes = window_seconds // 60
    for row in await db.fetch(MISSED_SLOTS, window_seconds, at_least):
        slots = "1 slot" if row["missed"] == 1 else f"{row['missed']} slots"
        conditions.append(
            Condition(
                rule="slots_missed",
                subject=f"config:{row['id']}",
                summary=f"{row['symbol']} on {row['exchange']} (config {row['id']}): "
                f"{slots} missed in the last {minutes} min (runs started too late to serve them)",
                details={
                    "config_id": row["id"],
                    "symbol": row["symbol"],
                    "exchange": row["exchange"],
                    "missed_slots": row["missed"],
                    "runs": row["runs"],
                    "window_seconds": window_seconds,
                },
                since=row["first_at"],
            )
        )
    return conditions


async def silent_schedulers(db: Pool | Connection, *, silent_seconds: int, now: datetime) -> list[Condition]:
    rows = await db.fetch(SCHEDULERS)
    beating = [row for row in rows if row["scheduler_id"] is not None]
    silent_before = now - timedelta(seconds=silent_seconds)
    alive = [row for row in beating if row["heartbeat_at"] >= silent_before]
    conditions = []
    for row in beating:
        if row["heartbeat_at"] >= silent_before:
            continue
        replaced = any(
            other["backend"] == row["backend"] and other["started_at"] > row["heartbeat_at"] for other in alive
        )
        if replaced:
            continue
        others = f"{len(alive)} other {_schedulers(len(alive))} alive" if alive else "no scheduler alive"
        conditions.append(
            Condition(
                rule="scheduler_silent",
                subject=f"scheduler:{row['scheduler_id']}",
                summary=f"The {_backend_name(row['backend'])} {row['scheduler_id']} sent its last heartbeat at "
                f"{_time(row['heartbeat_at'])} and did not shut down; {others}",
                details={
                    "scheduler_id": row["scheduler_id"],
                    "backend": row["backend"],
                    "last_heartbeat_at": row["heartbeat_at"].isoformat(),
                    "schedulers_alive": len(alive),
                },
                since=row["heartbeat_at"],
            )
        )
    if not beating and rows[0]["configs_enabled"]:
        conditions.append(
            Condition(
                rule="scheduler_silent",
                subject="scheduler",
                summary=f"No scheduler heartbeat for {_duration(silent_seconds)}: "
                "enabled configs are not being collected",
                details={"schedulers_alive": 0},
                hold_seconds=silent_seconds,
            )
        )
    return conditions


async def stale_series(db: Pool | Connection, *, settings: Settings, now: datetime) -> list[Condition]:
    conditions = []
    for series in await read_series_freshness(db, now=now, settings=settings):
        if not series.stale:
            continue
        market = f"{series.symbol} {series.timeframe} on {series.exchange} (config {series.config_id})"
        allowed = _duration(series.stale_after_seconds)
        if series.newest_candle is None:
            summary = f"{market}: no candle stored yet, expected by {_time(series.stale_at)}"
        else:
            summary = f"{market}: newest candle opened {_time(series.newest_candle)}, more than {allowed} behind"
        conditions.append(
            Condition(
                rule="series_stale",
                subject=f"series:{series.config_id}:{series.timeframe}",
                summary=summary,
                details={
                    "config_id": series.config_id,
                    "exchange": series.exchange,
                    "symbol": series.symbol,
                    "timeframe": series.timeframe,
                    "newest_candle": None if series.newest_candle is None else series.newest_candle.isoformat(),
                    "stale_after_seconds": series.stale_after_seconds,
                },
                since=series.stale_at,
            )
        )
    return conditions


async def paused_exchanges(db: Pool | Connection, *, paused_seconds: int) -> list[Condition]:
    conditions = []
    for exchange in await read_exchange_states(db):
        if exchange.state == "ok" or exchange.since is None:
            continue
        until = "" if exchange.until is None else f" until {_time(exchange.until)}"
        reason = f": {_shortened(exchange.reason)}" if exchange.reason else ""
        held = "banned this service" if exchange.state == "banned" else "paused every request"
        conditions.append(
            Condition(
                rule="exchange_paused",
                subject=f"exchange:{exchange.exchange}",
                summary=f"{exchange.exchange} has {held} since {_time(exchange.since)}{until}{reason}",
                details={
                    "exchange": exchange.exchange,
                    "state": exchange.state,
                    "until": None if exchange.until is None else exchange.until.isoformat(),
                    "reason": exchange.reason,
                },
                since=exchange.since,
                hold_seconds=paused_seconds,
            )
        )
    return conditions


def _schedulers(count: int) -> str:
    return "scheduler" if count == 1 else "schedulers"


def _backend_name(backend: str) -> str:
    return "arq worker" if backend == "arq" else "in-process scheduler"


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _shortened(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_IN_SUMMARY else line[: ERROR_IN_SUMMARY - 1] + "…"


def condition_details(condition: Condition) -> dict[str, Any]:
    """The details as stored and shown: the rule's facts, and since when the condition holds when known."""
    if condition.since is None:
        return condition.details
    return {**condition.details, "since": condition.since.isoformat()}
