"""What the alerts are made of: the rules' conditions, the alerts' states, and what the API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

AlertRule = Literal["config_failing", "series_stale", "scheduler_silent", "exchange_paused", "slots_missed"]
AlertState = Literal["firing", "resolved"]
NotificationKind = Literal["firing", "resolved", "reminder"]


class Condition(msgspec.Struct, kw_only=True, frozen=True):
    """One rule holding for one subject now, as the rule reads it from the database.

    ``since``: when the condition began, when the data says so (None: from when it was first seen).
    The alert fires once the condition has held ``hold_seconds``.
    """

    rule: AlertRule
    subject: str
    summary: str
    details: dict[str, Any]
    since: datetime | None = None
    hold_seconds: float = 0.0


class OpenAlert(msgspec.Struct, kw_only=True, frozen=True):
    """An alert episode not yet resolved: pending (``firing_since`` null) or firing."""

    id: int
    rule: AlertRule
    subject: str
    summary: str
    details: dict[str, Any]
    condition_since: datetime
    firing_since: datetime | None
    last_notified_at: datetime | None


class Alert(msgspec.Struct, kw_only=True):
    """An alert that fired: about one ``subject`` (``config:12``, ``series:12:1m``, ``exchange:binance``,
    ``scheduler:<id>``), by one ``rule``.

    - ``summary``: one line for people; ``details``: the rule's facts (ids, counts, times).
    - ``firing_since``: when it fired; ``resolved_at``: when its condition cleared (null while firing).
    - ``last_notified_at``: when the latest webhook message about it was queued (null: none was,
      e.g. without ``ALERT_WEBHOOK_URL``).
    """

    id: int
    rule: AlertRule
    subject: str
    state: AlertState
    summary: str
    details: dict[str, Any]
    firing_since: datetime
    resolved_at: datetime | None
    last_notified_at: datetime | None


class AlertDelivery(msgspec.Struct, kw_only=True):
    """The webhook's outbox.

    - ``webhook_configured``: ``ALERT_WEBHOOK_URL`` is set (its value is never shown).
    - ``undelivered``: messages waiting, oldest first; ``last_error``: why the oldest one's latest
      attempt failed, and ``next_attempt_at`` when it is tried again.
    - ``last_delivered_at``: the latest message the receiver accepted.
    - ``given_up``: messages given up in the last 24 hours (refused by the receiver, or undelivered for a day).
    """

    webhook_configured: bool
    undelivered: int
    last_error: str | None
    next_attempt_at: datetime | None
    last_delivered_at: datetime | None
    given_up: int


class Alerts(msgspec.Struct, kw_only=True):
    """``firing``: every alert firing now (at most ``limit``; ``firing_count`` has them all), the
    oldest first. ``recent``: those resolved in the last ``hours``, the latest first (at most ``limit``).
    ``next_evaluation_at``: when the rules are read again (null before the first evaluation)."""

    firing: list[Alert]
    firing_count: int
    recent: list[Alert]
    next_evaluation_at: datetime | None
    delivery: AlertDelivery
