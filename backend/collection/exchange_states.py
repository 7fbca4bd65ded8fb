"""What each exchange ordered (pauses, bans) and how often it was asked, kept in PostgreSQL so that any
process answers for every process: web processes for arq workers too, and nothing resets on restart.

Each process's clients keep their pause in memory (:class:`backend.collection.exchanges.ExchangePause`)
and count their requests. :class:`ExchangeActivity` (one per process) writes a pause to
``exchange_pauses`` when it starts or is extended and deletes it when it ends, in a task of its
own (a run never waits for it), and adds the request counts to ``exchange_request_totals`` when
:meth:`ExchangeActivity.flush` is called (at each scheduler heartbeat), not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from backend.db.outage import SHUTDOWN_WRITE_SECONDS
from backend.db.pool import Connection, Pool
from backend.waiting import cancel_and_wait

logger = logging.getLogger(__name__)

State = Literal["ok", "paused", "banned"]

# Every exchange an enabled config collects from, or that has a pause running or was ever asked:
# its state across processes (banned beats paused), the earliest start and the latest end of the
# pauses running, the reason of the one that ends last, and its request totals.
READ_EXCHANGE_STATES = """
WITH active AS (
    SELECT exchange, state, since, until, reason FROM exchange_pauses WHERE until > now()
), exchanges AS (
    SELECT exchange FROM data_collection_configs WHERE enabled
    UNION SELECT exchange FROM active
    UNION SELECT exchange FROM exchange_request_totals
)
SELECT exchanges.exchange,
       CASE WHEN bool_or(active.state = 'banned') THEN 'banned'
            WHEN count(active.state) > 0 THEN 'paused' ELSE 'ok' END AS state,
       min(active.since) AS since, max(active.until) AS until,
       (array_agg(active.reason ORDER BY active.until DESC) FILTER (WHERE active.state IS NOT NULL))[1] AS reason,
       coalesce(min(totals.requests), 0) AS requests, coalesce(min(totals.errors), 0) AS errors,
       coalesce(min(totals.rate_limits), 0) AS rate_limits, coalesce(min(totals.bans), 0) AS bans
FROM exchanges
LEFT JOIN active USING (exchange)
LEFT JOIN exchange_request_totals AS totals USING (exchange)
GROUP BY exchanges.exchange
ORDER BY exchanges.exchange
"""
RECORD_PAUSE = """
INSERT INTO exchange_pauses (exchange, process, state, since, until, reason) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (exchange, process)
DO UPDATE SET state = excluded.state, since = excluded.since, until = excluded.until, reason = excluded.reason
"""
END_PAUSE = "DELETE FROM exchange_pauses WHERE exchange = $1 AND process = $2"
# keys in one order, so that two processes flushing at once never deadlock
ADD_REQUEST_TOTALS = """
INSERT INTO exchange_request_totals AS t (exchange, requests, errors, rate_limits, bans)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) ORDER BY 1
ON CONFLICT (exchange) DO UPDATE
SET requests = t.requests + excluded.requests, errors = t.errors + excluded.errors,
    rate_limits = t.rate_limits + excluded.rate_limits, bans = t.bans + excluded.bans
"""
# pauses whose process stopped before deleting them, long over
FORGET_ENDED_PAUSES = "DELETE FROM exchange_pauses WHERE until < now() - interval '1 day'"
# a pause's end is written this long after it passed (timers may fire a little early)
END_CHECK_SLACK_SECONDS = 0.05


class ExchangeState(msgspec.Struct, kw_only=True, frozen=True):
    """One exchange, across every process that asks it.

    - ``state``: ``banned`` while a ban (418) holds requests in any process, else ``paused`` while
      a rate-limit pause does, else ``ok``.
    - ``since``: when the current pause or ban began (requests held since then without a break);
      ``until``: when the last one running ends; ``reason``: what the exchange answered. Null when ok.
    - ``requests``, ``errors``, ``rate_limits``, ``bans``: totals since the database was created, as
      of each process's latest heartbeat.
    """

    exchange: str
    state: State
    since: datetime | None
    until: datetime | None
    reason: str | None
    requests: int = 0
    errors: int = 0
    rate_limits: int = 0
    bans: int = 0


class PauseSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """A client's pause as it stands: relative times, so any clock can place it."""

    state: Literal["paused", "banned"]
    held_for_seconds: float  # requests have been held this long, without a break
    remaining_seconds: float
    reason: str


@dataclass(slots=True)
class RequestCounts:
    requests: int = 0
    errors: int = 0
    rate_limits: int = 0
    bans: int = 0

    def add(self, other: RequestCounts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rate_limits += other.rate_limits
        self.bans += other.bans


async def read_exchange_states(db: Pool | Connection) -> list[ExchangeState]:
    """Every exchange of an enabled config (and any other that is paused or was asked), by name."""
    return [msgspec.convert(dict(row), ExchangeState) for row in await db.fetch(READ_EXCHANGE_STATES)]


async def forget_ended_pauses(db: Pool | Connection) -> None:
    await db.execute(FORGET_ENDED_PAUSES)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ExchangeActivity:
    """One process's pauses and request counts, on their way to PostgreSQL.

    Called from the event loop only (ccxt's response hook runs there). Writes never raise into the
    caller: a write that fails is logged and tried again at the next :meth:`flush`.
    """

    def __init__(self, pool: Pool, *, process: str, clock: Callable[[], datetime] = utc_now) -> None:
        self.process = process
        self._pool = pool
        self._clock = clock
        self._counts: dict[str, RequestCounts] = {}
        self._pending: dict[str, tuple[PauseSnapshot | None, datetime]] = {}  # exchange -> (pause or its end, seen at)
        self._watched: dict[str, Callable[[], PauseSnapshot | None]] = {}
        self._end_checks: dict[str, asyncio.TimerHandle] = {}
        self._writing = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None

    def count(self, exchange: str, *, requests: int = 0, errors: int = 0, rate_limits: int = 0, bans: int = 0) -> None:
        counts = self._counts.get(exchange)
        if counts is None:
            counts = self._counts[exchange] = RequestCounts()
        counts.add(RequestCounts(requests, errors, rate_limits, bans))

    def pause_changed(self, exchange: str, snapshot: Callable[[], PauseSnapshot | None]) -> None:
        """A pause of ``exchange`` started or was extended (``snapshot`` tells how it stands):
        written soon, and its end once it has passed."""
        self._watched[exchange] = snapshot
        self._check(exchange)

    def _check(self, exchange: str) -> None:
        pause = self._watched[exchange]()
        self._pending[exchange] = (pause, self._clock())
        timer = self._end_checks.pop(exchange, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        if pause is not None:
            delay = pause.remaining_seconds + END_CHECK_SLACK_SECONDS
            self._end_checks[exchange] = loop.call_later(delay, self._check, exchange)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pauses(), name="exchange pauses")

    async def _write_pauses(self) -> None:
        async with self._writing:
            while self._pending:
                exchange, entry = next(iter(self._pending.items()))
                pause, seen_at = entry
                try:
                    if pause is None:
                        await self._pool.execute(END_PAUSE, exchange, self.process)
                    else:
                        await self._pool.execute(
                            RECORD_PAUSE,
                            exchange,
                            self.process,
                            pause.state,
                            seen_at - timedelta(seconds=pause.held_for_seconds),
                            seen_at + timedelta(seconds=pause.remaining_seconds),
                            pause.reason,
                        )
                except Exception as exc:
                    logger.warning("the %s pause could not be recorded now (%s); next heartbeat", exchange, exc)
                    return
                if self._pending.get(exchange) is entry:  # not replaced by a newer one meanwhile
                    del self._pending[exchange]

    async def flush(self) -> None:
        """Add the requests counted since the last flush to the totals, and write the pauses not
        written yet. Raises when the database cannot take them (they are kept for the next flush)."""
        counts, self._counts = self._counts, {}
        if counts:
            names = sorted(counts)
            try:
                await self._pool.execute(
                    ADD_REQUEST_TOTALS,
                    names,
                    [counts[name].requests for name in names],
                    [counts[name].errors for name in names],
                    [counts[name].rate_limits for name in names],
                    [counts[name].bans for name in names],
                )
            except BaseException:
                for name, unsent in counts.items():
                    self._counts.setdefault(name, RequestCounts()).add(unsent)
                raise
        if self._pending:
            await self._write_pauses()

    async def close(self) -> None:
        """Stop watching pauses; what is still unwritten is written if the database takes it at once."""
        for timer in self._end_checks.values():
            timer.cancel()
        self._end_checks.clear()
        if self._writer is not None:
            await cancel_and_wait([self._writer])
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SHUTDOWN_WRITE_SECONDS):
                await self.flush()
