"""What a run is and how it ended, as the collector and the scheduler pass them around."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Trigger = Literal["schedule", "manual"]
FinalStatus = Literal["success", "partial", "failed"]


class RunConfig(msgspec.Struct, kw_only=True, frozen=True):
    """What a run reads of its config."""

    id: int
    symbol: str
    exchange: str
    timeframes: list[str]
    backfill_days: int


class RunOutcome(msgspec.Struct, kw_only=True, frozen=True):
    """How a run ended, exactly as its execution-log row was completed."""

    run_id: int
    status: FinalStatus
    records_collected: int
    duration_seconds: float
    error_type: str | None = None
    error_message: str | None = None
    error_cause: str | None = None  # the error in a few plain words, each cause once
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
