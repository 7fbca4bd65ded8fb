"""Exponential backoff for loops that must outlive an outage: retry soon, then less and less often."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    """``first_seconds``, doubling after each failure, never more than ``max_seconds``; a success resets it."""

    first_seconds: float
    max_seconds: float
    failures: int = 0

    def next_delay(self) -> float:
        """Record one more failure; the seconds to wait before the next attempt."""
        delay = min(self.max_seconds, self.first_seconds * 2.0**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
