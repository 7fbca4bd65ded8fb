"""SQL of the alerts: claiming an evaluation, the alerts' states, the webhook outbox, and what the API reads.

An evaluation is the system job ``alert_evaluation``: the process that claims it while it is due
(``FOR UPDATE SKIP LOCKED``, so concurrent claimers skip rather than wait) moves it to the next
boundary of the interval and evaluates inside the same transaction, so its state changes and the
messages they queue commit together, or not at all.

The outbox is delivered in order, one message at a time across the deployment: a process takes
the oldest undelivered message for a lease (``claimed_until``), posts it outside any transaction,
then records the outcome; a process that dies mid-post leaves the lease to run out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from backend.alerts.schemas import Alert, AlertDelivery, NotificationKind, OpenAlert
from backend.db.pool import Connection, Pool
from backend.monitoring.events import CHANNEL

EVALUATION_JOB = "alert_evaluation"

ENSURE_EVALUATION_JOB = "INSERT INTO system_jobs (name, next_run_at) VALUES ($1, now()) ON CONFLICT (name) DO NOTHING"
# $1 = the job, $2 = seconds between evaluations: the next one is due at the next whole multiple
CLAIM_EVALUATION = """
WITH due AS (
    SELECT name FROM system_jobs WHERE name = $1 AND next_run_at <= now() FOR UPDATE SKIP LOCKED
)
UPDATE system_jobs AS job
SET next_run_at = to_timestamp((floor(extract(epoch FROM now()) / $2) + 1) * $2)
FROM due
WHERE job.name = due.name
RETURNING now() AS evaluated_at
"""
SECONDS_UNTIL_EVALUATION = """
SELECT extract(epoch FROM next_run_at - now())::double precision FROM system_jobs WHERE name = $1
"""

OPEN_ALERTS = """
SELECT id, rule, subject, summary, details, condition_since, firing_since, last_notified_at
FROM alerts WHERE resolved_at IS NULL
"""
INSERT_ALERTS = """
INSERT INTO alerts (rule, subject, summary, details, condition_since, firing_since)
SELECT rule, subject, summary, details, condition_since, firing_since
FROM jsonb_to_recordset($1::jsonb) AS new (
    rule text, subject text, summary text, details jsonb, condition_since timestamptz, firing_since timestamptz
)
RETURNING id, rule, subject
"""
# summary and details as of now; a pending alert that fires now gets its firing_since
UPDATE_ALERTS = """
UPDATE alerts AS alert
SET summary = changed.summary, details = changed.details,
    firing_since = coalesce(alert.firing_since, changed.firing_since)
FROM jsonb_to_recordset($1::jsonb) AS changed (id bigint, summary text, details jsonb, firing_since timestamptz)
WHERE alert.id = changed.id
"""
RESOLVE_ALERTS = "UPDATE alerts SET resolved_at = $2 WHERE id = ANY($1::bigint[])"
DELETE_PENDING_ALERTS = "DELETE FROM alerts WHERE id = ANY($1::bigint[]) AND firing_since IS NULL"
MARK_NOTIFIED = "UPDATE alerts SET last_notified_at = $2 WHERE id = ANY($1::bigint[])"
FORGET_RESOLVED_ALERTS = "DELETE FROM alerts WHERE resolved_at < now() - make_interval(days => $1)"
FORGET_SENT_NOTIFICATIONS = """
DELETE FROM alert_notifications WHERE coalesce(delivered_at, given_up_at) < now() - make_interval(days => $1)
"""

# the live event of a change, sent to every listening process when the evaluation commits
ANNOUNCE_CHANGE = """
SELECT pg_notify($1, json_build_object('type', 'alerts_changed', 'firing', $2::integer, 'fired', $3::integer,
                                       'resolved', $4::integer)::text)
"""

QUEUE_NOTIFICATION = "INSERT INTO alert_notifications (kind, body) VALUES ($1, $2) RETURNING id"
# The oldest undelivered message, when it is due and no process holds it; $1 = the lease in seconds.
CLAIM_NEXT_NOTIFICATION = """
WITH head AS (
    SELECT id FROM alert_notifications
    WHERE delivered_at IS NULL AND given_up_at IS NULL
    ORDER BY id
    LIMIT 1
    FOR UPDATE
)
UPDATE alert_notifications AS message
SET claimed_until = now() + make_interval(secs => $1), attempts = message.attempts + 1
FROM head
WHERE message.id = head.id AND message.next_attempt_at <= now()
  AND (message.claimed_until IS NULL OR message.claimed_until < now())
RETURNING message.id, message.kind, message.body, message.attempts,
          extract(epoch FROM now() - message.created_at)::double precision AS age_seconds
"""
# seconds until the oldest undelivered message can be taken (0 or less: now); null when none waits
SECONDS_UNTIL_NEXT_NOTIFICATION = """
SELECT extract(epoch FROM greatest(next_attempt_at, coalesce(claimed_until, next_attempt_at)) - now())::double precision
FROM alert_notifications
WHERE delivered_at IS NULL AND given_up_at IS NULL
ORDER BY id
LIMIT 1
"""
MARK_DELIVERED = """
UPDATE alert_notifications SET delivered_at = now(), claimed_until = NULL, last_error = NULL WHERE id = $1
"""
MARK_FAILED = """
UPDATE alert_notifications
SET claimed_until = NULL, last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
WHERE id = $1
"""
MARK_GIVEN_UP = """
UPDATE alert_notifications SET claimed_until = NULL, last_error = $2, given_up_at = now() WHERE id = $1
"""

ALERT_COLUMNS = """
id, rule, subject, CASE WHEN resolved_at IS NULL THEN 'firing' ELSE 'resolved' END AS state, summary, details,
firing_since, resolved_at, last_notified_at
"""
LIST_FIRING = f"""
SELECT {ALERT_COLUMNS} FROM alerts
WHERE resolved_at IS NULL AND firing_since IS NOT NULL
ORDER BY firing_since, id
LIMIT $1
"""
COUNT_FIRING = "SELECT count(*) FROM alerts WHERE resolved_at IS NULL AND firing_since IS NOT NULL"
LIST_RECENT = f"""
SELECT {ALERT_COLUMNS} FROM alerts
WHERE resolved_at >= now() - make_interval(hours => $1)
ORDER BY resolved_at DESC, id DESC
LIMIT $2
"""
READ_DELIVERY = """
SELECT (SELECT count(*) FROM alert_notifications WHERE delivered_at IS NULL AND given_up_at IS NULL) AS undelivered,
       head.last_error, head.next_attempt_at,
       (SELECT max(delivered_at) FROM alert_notifications) AS last_delivered_at,
       (SELECT count(*) FROM alert_notifications WHERE given_up_at >= now() - interval '1 day') AS given_up,
       (SELECT next_run_at FROM system_jobs WHERE name = $1) AS next_evaluation_at
FROM (SELECT) AS one
LEFT JOIN LATERAL (
    SELECT last_error, next_attempt_at FROM alert_notifications
    WHERE delivered_at IS NULL AND given_up_at IS NULL
    ORDER BY id
    LIMIT 1
) AS head ON true
"""


class ClaimedNotification(msgspec.Struct, kw_only=True, frozen=True):
    """A queued message this process holds for its lease, to post now."""

    id: int
    kind: NotificationKind
    body: dict[str, Any]
    attempts: int  # this one included
    age_seconds: float


async def ensure_evaluation_job(db: Pool | Connection) -> None:
    await db.execute(ENSURE_EVALUATION_JOB, EVALUATION_JOB)


async def claim_evaluation(conn: Connection, *, every_seconds: int) -> datetime | None:
    """Inside a transaction: the time of this evaluation when this process won the interval, else None."""
    evaluated_at: datetime | None = await conn.fetchval(CLAIM_EVALUATION, EVALUATION_JOB, every_seconds)
    return evaluated_at


async def seconds_until_evaluation(db: Pool | Connection) -> float | None:
    """Seconds until the next evaluation is due (0 or less: now); None before the first one."""
    seconds: float | None = await db.fetchval(SECONDS_UNTIL_EVALUATION, EVALUATION_JOB)
    return seconds


async def open_alerts(conn: Connection) -> list[OpenAlert]:
    return [msgspec.convert(dict(row), OpenAlert) for row in await conn.fetch(OPEN_ALERTS)]


async def insert_alerts(conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert new alerts; their ids by (rule, subject)."""
    if not rows:
        return {}
    return {(row["rule"], row["subject"]): row["id"] for row in await conn.fetch(INSERT_ALERTS, rows)}


async def update_alerts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(UPDATE_ALERTS, rows)


async def resolve_alerts(conn: Connection, *, ids: list[int], at: datetime) -> None:
    if ids:
        await conn.execute(RESOLVE_ALERTS, ids, at)


async def delete_pending_alerts(conn: Connection, *, ids: list[int]) -> None:
    if ids:
        await conn.execute(DELETE_PENDING_ALERTS, ids)


async def mark_notified(conn: Connection, *, ids: list[int], at: datetime) -> None:
    if ids:
        await conn.execute(MARK_NOTIFIED, ids, at)


async def forget_old(conn: Connection, *, older_than_days: int) -> None:
    """Resolved alerts and sent (or given up) messages older than ``older_than_days`` go."""
    await conn.execute(FORGET_RESOLVED_ALERTS, older_than_days)
    await conn.execute(FORGET_SENT_NOTIFICATIONS, older_than_days)


async def announce_change(conn: Connection, *, firing: int, fired: int, resolved: int) -> None:
    await conn.execute(ANNOUNCE_CHANGE, CHANNEL, firing, fired, resolved)


async def queue_notification(conn: Connection, *, kind: NotificationKind, body: dict[str, Any]) -> int:
    notification_id: int = await conn.fetchval(QUEUE_NOTIFICATION, kind, body)
    return notification_id


async def claim_next_notification(db: Pool | Connection, *, lease_seconds: float) -> ClaimedNotification | None:
    row = await db.fetchrow(CLAIM_NEXT_NOTIFICATION, lease_seconds)
    return None if row is None else msgspec.convert(dict(row), ClaimedNotification)


async def seconds_until_next_notification(db: Pool | Connection) -> float | None:
    seconds: float | None = await db.fetchval(SECONDS_UNTIL_NEXT_NOTIFICATION)
    return seconds


async def mark_delivered(db: Pool | Connection, *, notification_id: int) -> None:
    await db.execute(MARK_DELIVERED, notification_id)


async def mark_failed(db: Pool | Connection, *, notification_id: int, error: str, retry_in_seconds: float) -> None:
    await db.execute(MARK_FAILED, notification_id, error, retry_in_seconds)


async def mark_given_up(db: Pool | Connection, *, notification_id: int, error: str) -> None:
    await db.execute(MARK_GIVEN_UP, notification_id, error)


async def list_firing(db: Pool | Connection, *, limit: int) -> tuple[list[Alert], int]:
    rows = await db.fetch(LIST_FIRING, limit)
    count: int = await db.fetchval(COUNT_FIRING)
    return [msgspec.convert(dict(row), Alert) for row in rows], count


async def list_recent(db: Pool | Connection, *, hours: int, limit: int) -> list[Alert]:
    return [msgspec.convert(dict(row), Alert) for row in await db.fetch(LIST_RECENT, hours, limit)]


async def read_delivery(db: Pool | Connection, *, webhook_configured: bool) -> tuple[AlertDelivery, datetime | None]:
    """The outbox's state, and when the next evaluation is due."""
    row = await db.fetchrow(READ_DELIVERY, EVALUATION_JOB)
    assert row is not None
    delivery = AlertDelivery(
        webhook_configured=webhook_configured,
        undelivered=row["undelivered"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        last_delivered_at=row["last_delivered_at"],
        given_up=row["given_up"],
    )
    return delivery, row["next_evaluation_at"]
