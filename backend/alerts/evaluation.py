"""One evaluation for the whole deployment, and the loop every process runs to take its turn.

Every web process and every arq worker runs :class:`Evaluator`. At each boundary of
``ALERT_EVALUATION_SECONDS`` they all try to claim the evaluation; one wins, and inside the
transaction of its claim reads every rule, moves the alerts (pending, firing, resolved) and queues
one webhook message per kind of change: all alerts that fired in this evaluation in one message,
all that resolved in another, all whose reminder came due in a third. The claim and the writes
commit together, so no change is ever announced twice, whichever processes run. A change also
sends the live event ``alerts_changed`` at commit, so open dashboards update their banner at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import msgspec

from backend.alerts import repository
from backend.alerts.failures import FailureStreak
from backend.alerts.messages import notification_body
from backend.alerts.rules import condition_details, read_conditions
from backend.alerts.schemas import Alert, Condition, NotificationKind, OpenAlert
from backend.db.pool import Connection, Pool
from backend.settings import Settings

logger = logging.getLogger(__name__)

# a process that lost the claim looks again this soon at the earliest (the winner may still be at it)
MIN_RECHECK_SECONDS = 0.25


@dataclass
class Changes:
    """What one evaluation does to the alerts, decided from their open rows and the conditions."""

    new: list[dict[str, Any]] = field(default_factory=list)  # rows to insert (firing or pending)
    updated: list[dict[str, Any]] = field(default_factory=list)  # id, summary, details, firing_since
    fired: list[Alert] = field(default_factory=list)  # ids of new ones are 0 until inserted
    resolved: list[Alert] = field(default_factory=list)
    reminded: list[Alert] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # pending alerts whose condition cleared


@dataclass(frozen=True)
class Evaluation:
    """What an evaluation this process won did."""

    evaluated_at: datetime
    fired: int
    resolved: int
    reminded: int
    queued: int  # webhook messages


def decide_changes(
    open_alerts: list[OpenAlert], conditions: list[Condition], *, now: datetime, reminder_seconds: int
) -> Changes:
    """Compare the conditions that hold now with the open alerts.

    A condition without an open alert opens one: firing at once when it has held ``hold_seconds``
    (since when the data says, else from now), pending otherwise. A pending alert fires once its
    condition has held long enough. A firing alert whose last message is ``reminder_seconds`` old
    is reminded of. An open alert without its condition resolves (firing) or goes (pending).
    """
    changes = Changes()
    holding = {(c.rule, c.subject): c for c in conditions}
    for alert in open_alerts:
        condition = holding.pop((alert.rule, alert.subject), None)
        if condition is None:
            if alert.firing_since is None:
                changes.dropped.append(alert.id)
            else:
                changes.resolved.append(_alert(alert, summary=alert.summary, details=alert.details, resolved_at=now))
            continue
        details = condition_details(condition)
        fires_now = alert.firing_since is None and _has_held(condition, alert.condition_since, now)
        if condition.summary != alert.summary or details != alert.details or fires_now:
            changes.updated.append(
                {
                    "id": alert.id,
                    "summary": condition.summary,
                    "details": details,
                    "firing_since": now if fires_now else None,
                }
            )
        if fires_now:
            changes.fired.append(_alert(alert, summary=condition.summary, details=details, firing_since=now))
        elif alert.firing_since is not None and reminder_seconds > 0:
            last = alert.last_notified_at or alert.firing_since
            if now - last >= timedelta(seconds=reminder_seconds):
                changes.reminded.append(_alert(alert, summary=condition.summary, details=details))
    for condition in holding.values():
        since = condition.since or now
        fires = _has_held(condition, since, now)
        details = condition_details(condition)
        changes.new.append(
            {
                "rule": condition.rule,
                "subject": condition.subject,
                "summary": condition.summary,
                "details": details,
                "condition_since": since,
                "firing_since": now if fires else None,
            }
        )
        if fires:
            changes.fired.append(
                Alert(
                    id=0,
                    rule=condition.rule,
                    subject=condition.subject,
                    state="firing",
                    summary=condition.summary,
                    details=details,
                    firing_since=now,
                    resolved_at=None,
                    last_notified_at=None,
                )
            )
    return changes


def _has_held(condition: Condition, since: datetime, now: datetime) -> bool:
    return now - since >= timedelta(seconds=condition.hold_seconds)


def _alert(
    alert: OpenAlert,
    *,
    summary: str,
    details: dict[str, Any],
    firing_since: datetime | None = None,
    resolved_at: datetime | None = None,
) -> Alert:
    started = firing_since or alert.firing_since
    assert started is not None
    return Alert(
        id=alert.id,
        rule=alert.rule,
        subject=alert.subject,
        state="resolved" if resolved_at is not None else "firing",
        summary=summary,
        details=details,
        firing_since=started,
        resolved_at=resolved_at,
        last_notified_at=alert.last_notified_at,
    )


async def evaluate_once(pool: Pool, *, settings: Settings) -> Evaluation | None:
    """Claim this interval's evaluation and carry it out; None when another process has it (or had it)."""
    await repository.ensure_evaluation_job(pool)
    async with pool.acquire() as proxy, proxy.transaction():
        conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
        now = await repository.claim_evaluation(conn, every_seconds=settings.alert_evaluation_seconds)
        if now is None:
            return None
        conditions = await read_conditions(conn, settings=settings, now=now)
        open_alerts = await repository.open_alerts(conn)
        changes = decide_changes(open_alerts, conditions, now=now, reminder_seconds=settings.alert_reminder_seconds)
        ids = await repository.insert_alerts(conn, changes.new)
        changes.fired = [
            msgspec.structs.replace(alert, id=ids[(alert.rule, alert.subject)]) if alert.id == 0 else alert
            for alert in changes.fired
        ]
        await repository.update_alerts(conn, changes.updated)
        await repository.resolve_alerts(conn, ids=[alert.id for alert in changes.resolved], at=now)
        await repository.delete_pending_alerts(conn, ids=changes.dropped)
        queued = 0
        if settings.alert_webhook_url is not None:
            queued = await _queue_messages(conn, changes, now=now)
        if changes.fired or changes.resolved:
            firing = sum(alert.firing_since is not None for alert in open_alerts)
            firing += len(changes.fired) - len(changes.resolved)
            await repository.announce_change(
                conn, firing=firing, fired=len(changes.fired), resolved=len(changes.resolved)
            )
        await repository.forget_old(conn, older_than_days=settings.log_retention_days)
    return Evaluation(
        evaluated_at=now,
        fired=len(changes.fired),
        resolved=len(changes.resolved),
        reminded=len(changes.reminded),
        queued=queued,
    )


async def _queue_messages(conn: Connection, changes: Changes, *, now: datetime) -> int:
    """One message per kind of change, oldest alerts first; the alerts remember they were notified."""
    groups: list[tuple[NotificationKind, list[Alert]]] = [
        ("firing", changes.fired),
        ("resolved", changes.resolved),
        ("reminder", changes.reminded),
    ]
    queued = 0
    for kind, alerts in groups:
        if not alerts:
            continue
        alerts = sorted(alerts, key=lambda alert: (alert.firing_since, alert.id))
        notified = [msgspec.structs.replace(alert, last_notified_at=now) for alert in alerts]
        await repository.queue_notification(conn, kind=kind, body=notification_body(kind, notified))
        await repository.mark_notified(conn, ids=[alert.id for alert in alerts], at=now)
        queued += 1
    return queued


class Evaluator:
    """This process's turn at the evaluation: at each boundary of the interval it tries to claim it
    (one process wins each), then sleeps until the next one is due. Its failures are logged once
    per streak; it shares nothing with collection but one pooled connection, held for the evaluation's
    transaction."""

    def __init__(self, pool: Pool, *, settings: Settings, on_queued: Callable[[], None]) -> None:
        self._pool = pool
        self._settings = settings
        self._on_queued = on_queued
        self._failures = FailureStreak(logger, "alert evaluation")

    async def run(self) -> None:
        every = self._settings.alert_evaluation_seconds
        while True:
            try:
                evaluation = await evaluate_once(self._pool, settings=self._settings)
                if evaluation is not None and evaluation.queued:
                    self._on_queued()
                if evaluation is not None and (evaluation.fired or evaluation.resolved):
                    logger.info(
                        "alerts: %d fired, %d resolved, %d reminded (%d webhook messages queued)",
                        evaluation.fired,
                        evaluation.resolved,
                        evaluation.reminded,
                        evaluation.queued,
                    )
                until_next = await repository.seconds_until_evaluation(self._pool)
                self._failures.succeeded()
            except Exception as exc:
                self._failures.failed(exc=exc)
                until_next = every
            delay = every if until_next is None else min(max(until_next, MIN_RECHECK_SECONDS), every)
            await asyncio.sleep(delay)
