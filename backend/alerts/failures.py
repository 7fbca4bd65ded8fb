"""Logging a background loop's failures once per streak, not once per attempt."""

from __future__ import annotations

import logging

from backend.db.outage import DATABASE_OUTAGE, is_outage


class FailureStreak:
    """Logs the first failure of a streak (and a failure of another kind), then stays quiet until
    the loop works again, which it logs once with how many attempts failed meanwhile. A database
    outage is reported to the process's outage log instead, which writes one line for all loops."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._failures = 0
        self._kind: str | None = None

    @property
    def failing(self) -> bool:
        return self._failures > 0

    def failed(self, *, exc: BaseException | None = None, detail: str | None = None) -> None:
        """Record a failure: an exception, or ``detail`` saying what went wrong in words that are
        safe to log (the exception's own text may not be)."""
        self._failures += 1
        outage = exc is not None and detail is None and is_outage(exc)
        kind = "outage" if outage else detail or type(exc).__name__  # an outage raises several types
        if kind == self._kind:
            return
        self._kind = kind
        if outage:
            assert exc is not None
            DATABASE_OUTAGE.unreachable(exc)  # the process's one outage line, shared with every other loop
        elif detail is not None or exc is None:
            self._logger.warning("%s failed (%s); retrying quietly until it works", self._what, kind)
        else:
            self._logger.error("%s failed; retrying quietly until it works", self._what, exc_info=exc)

    def succeeded(self) -> None:
        if self._kind == "outage":
            DATABASE_OUTAGE.reachable()
        elif self._failures:
            self._logger.warning("%s works again after %d failed attempts", self._what, self._failures)
        self._failures = 0
        self._kind = None
