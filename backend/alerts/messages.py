"""The webhook's JSON body: one message per evaluation and kind of change, for every alert it concerns.

Its text is in the two fields chat services read: ``text`` (Slack, with ``&``, ``<`` and ``>``
escaped as Slack asks) and ``content`` (Discord, with Markdown characters escaped and mentions
disabled through ``allowed_mentions``). Both stay within Discord's 2,000 characters: alerts that
do not fit are counted ("… and 12 more"). ``alerts`` lists the first 50 alerts as the API shows
them, ``alerts_total`` how many the message concerns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from backend.alerts.schemas import Alert, AlertRule, NotificationKind

SERVICE_NAME = "Altar Trader Hub"
TEXT_LIMIT = 1900  # Discord refuses content over 2,000 characters
ALERTS_IN_BODY = 50
RULE_TITLES: dict[AlertRule, str] = {
    "config_failing": "Runs failing",
    "series_stale": "Series stale",
    "scheduler_silent": "Scheduler silent",
    "exchange_paused": "Exchange paused",
    "slots_missed": "Slots missed",
}
HEADINGS: dict[NotificationKind, str] = {"firing": "FIRING", "resolved": "RESOLVED", "reminder": "STILL FIRING"}
DISCORD_MARKDOWN = re.compile(r"([\\*_~`|>\[\]])")  # what Markdown would format (lines start with our bullet)


def notification_body(kind: NotificationKind, alerts: list[Alert]) -> dict[str, Any]:
    """The JSON posted for ``alerts`` that changed the same way in one evaluation (oldest first)."""
    lines = [_line(kind, alert) for alert in alerts]
    return {
        "text": _text(kind, lines, _slack_escape),
        "content": _text(kind, lines, _discord_escape),
        "allowed_mentions": {"parse": []},
        "event": kind,
        "alerts": [msgspec.to_builtins(alert) for alert in alerts[:ALERTS_IN_BODY]],
        "alerts_total": len(alerts),
    }


def _line(kind: NotificationKind, alert: Alert) -> str:
    line = f"{RULE_TITLES[alert.rule]}: {alert.summary}"
    if kind == "resolved" and alert.resolved_at is not None:
        lasted = _duration(alert.firing_since, alert.resolved_at)
        return f"{line} (fired {_time(alert.firing_since)}, resolved after {lasted})"
    if kind == "reminder":
        return f"{line} (firing since {_time(alert.firing_since)})"
    return line


def _text(kind: NotificationKind, lines: list[str], escape: Callable[[str], str]) -> str:
    heading = f"[{SERVICE_NAME}] {HEADINGS[kind]}"
    if len(lines) == 1:
        single = f"{heading}: {escape(lines[0])}"
        if len(single) <= TEXT_LIMIT:
            return single
    text = f"{heading}: {len(lines)} alerts"
    for index, line in enumerate(lines):
        entry = f"\n• {escape(line)}"
        left_after = len(lines) - index - 1
        reserve = len(f"\n… and {left_after} more") if left_after else 0
        if len(text) + len(entry) + reserve > TEXT_LIMIT:
            return f"{text}\n… and {len(lines) - index} more"
        text += entry
    return text


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _discord_escape(text: str) -> str:
    return DISCORD_MARKDOWN.sub(r"\\\1", text)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _duration(start: datetime, end: datetime) -> str:
    seconds = max(0, round((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
