"""Walking one series page by page: forward to the newest closed candle, then repairing its holes.

Forward: from after the newest stored candle (or from the window start, ``backfill_days`` ago, for
a new series) up to the newest closed candle, the next page fetched while the previous one is
stored (``storage.SeriesWriter``: appended with COPY, committed within a quarter of a second). Then
the holes inside the window are asked again; they are not even looked for when the series had none
when it was opened and the walk stored no candle apart from the others. A page that still fails
after its retries ends the walk there, so the next run resumes at it.

What the walk trusts:

- An answer is checked before it is used: JSON shaped as the exchange's dialect answers
  (``exchanges``), every candle keeping the rules (``candle_rules``). A page with broken candles is
  asked again; if the exchange keeps sending them, its good candles are stored, the broken ones
  recorded as rejected (and not asked again with retries), and the timeframe ends ``partial`` with
  ``InvalidCandle``.
- An empty answer while the series is more than ``CAUGHT_UP_SLACK`` candles behind is not "caught
  up" until the exchange's answer for a later ``since`` agrees; a dialect answering fixed windows
  (a ``PageRequest.window_end``) says only that its window is empty, and the walk goes on after it.
- Only a well-formed answer without broken candles, from an exchange whose profile is verified
  (:mod:`backend.collection.profiles`), confirms that a stretch has no candles (remembered, and
  asked again once older than ``EMPTY_RANGE_MAX_AGE_HOURS``), or that the exchange has nothing
  before some time; the latter holds only for windows that start as early. Empty windows in a row
  make one stretch confirmed empty, forward as in the holes.

What the exchange cannot serve: nothing older than its reach (Kraken's latest 720 candles, Gate's
10,000) is asked for. The walk starts no earlier than the reach, and the run's metadata says what
it could not have (``TimeframeProgress.beyond_reach``); those candles are neither missing nor
confirmed empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ccxt
import msgspec

from backend.collection import repository as candles
from backend.collection.candle_rules import CheckedPage, InvalidCandle, Rejection, check_candles
from backend.collection.deadline import OutOfTime, until
from backend.collection.exchanges import ExchangeClient, RetryPolicy
from backend.collection.repository import CandleRow, Hole, StoredSeries
from backend.collection.storage import PartitionCache, SeriesWriter, StoredPage
from backend.collection.timeframes import (
    candles_in,
    floor_open,
    last_closed_open,
    next_open,
    shift_open,
    to_ms,
)
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.db.pool import Pool

logger = logging.getLogger(__name__)

MAX_HOLES_PER_RUN = 50  # holes one run repairs per timeframe (the rest wait for the next run)
REVISED_CANDLES = 3  # the newest stored candles each run asks for again, to catch the exchange's revisions
CAUGHT_UP_SLACK = 2  # an empty answer this close to the newest closed candle means caught up
INVALID_CANDLES_IN_METADATA = 5  # the first offending candles a run's metadata shows


@dataclass(frozen=True)
class Series:
    config_id: int | None  # None: an admin's re-verification, not a config's run
    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        owner = "re-verification" if self.config_id is None else f"config {self.config_id}"
        return f"{owner} {self.exchange} {self.symbol} {self.timeframe}"


@dataclass
class TimeframeProgress:
    """What one timeframe did in a run; filled in as it goes, so a cut-off run still reports it."""

    timeframe: str
    records: int = 0
    revised: int = 0  # stored candles the exchange had changed since: rewritten
    pages: int = 0
    retries: int = 0
    holes_repaired: int = 0
    first_candle: datetime | None = None
    last_candle: datetime | None = None
    duration_seconds: float = 0.0
    error_type: str | None = None
    error: str | None = None
    cause: str | None = None  # the error in a few plain words (backend.collection.causes)
    done: bool = False
    rejected_candles: int = 0  # distinct candles
    beyond_reach: BeyondReach | None = None
    invalid_candles: list[Rejection] = field(default_factory=list)
    _rejected_at: set[datetime] = field(default_factory=set)

    @property
    def succeeded(self) -> bool:
        return self.done and self.error_type is None

    @property
    def partial(self) -> bool:
        """Walked to the end, storing every candle but those the exchange kept sending broken."""
        return self.done and self.error_type == InvalidCandle.__name__

    def stored(self, page: StoredPage) -> None:
        """A committed page; one that changed nothing (stored candles asked again) leaves first and last."""
        self.records += page.records
        self.revised += page.revised
        if page.records:
            self.first_candle = min(page.first, self.first_candle or page.first)
            self.last_candle = max(page.last, self.last_candle or page.last)

    def reject(self, rejections: list[Rejection]) -> None:
        new = [r for r in rejections if r.open_time is None or r.open_time not in self._rejected_at]
        self._rejected_at.update(r.open_time for r in new if r.open_time is not None)
        self.rejected_candles += len(new)
        room = INVALID_CANDLES_IN_METADATA - len(self.invalid_candles)
        self.invalid_candles.extend(new[: max(0, room)])

    def fail(self, error_type: str, message: str, cause: str) -> None:
        self.error_type, self.error, self.cause, self.done = error_type, message, cause, True

    def finish(self) -> None:
        """The walk reached its end: ``partial`` when candles were rejected on the way."""
        self.done = True
        if self.rejected_candles and self.error_type is None:
            first = self.invalid_candles[0]
            where = f" at {first.open_time.isoformat()}" if first.open_time else ""
            self.error_type = InvalidCandle.__name__
            self.cause = f"{self.rejected_candles} candle(s) broke the rules and were not stored"
            self.error = f"{self.cause}, first{where}: {first.reason}"

    def as_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "records": self.records,
            "revised": self.revised,
            "first_candle": self.first_candle.isoformat() if self.first_candle else None,
            "last_candle": self.last_candle.isoformat() if self.last_candle else None,
            "pages": self.pages,
            "retries": self.retries,
            "holes_repaired": self.holes_repaired,
            "duration_seconds": round(self.duration_seconds, 3),
            "error_type": self.error_type,
            "error": self.error,
            "cause": self.cause,
        }
        if self.rejected_candles:
            metadata["rejected_candles"] = self.rejected_candles
            metadata["invalid_candles"] = [r.as_metadata() for r in self.invalid_candles]
        if self.beyond_reach is not None:
            metadata["beyond_reach"] = self.beyond_reach.as_metadata()
        return metadata

    def asked_beyond_reach(self, asked_from: datetime, served_from: datetime, message: str) -> None:
        """Candles from ``asked_from`` up to ``served_from`` were wanted, and the exchange does not
        serve them (the earliest such start of the run is kept)."""
        if self.beyond_reach is None or asked_from < self.beyond_reach.asked_from:
            self.beyond_reach = BeyondReach(asked_from, served_from, message)


@dataclass(frozen=True)
class BeyondReach:
    """What a timeframe wanted that its exchange does not serve: ``[asked_from, served_from)``."""

    asked_from: datetime
    served_from: datetime  # the oldest open time the walk asked for instead
    message: str  # "beyond what kraken serves: the latest 720 1m candles"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "asked_from": self.asked_from.isoformat(),
            "served_from": self.served_from.isoformat(),
        }


@dataclass(frozen=True)
class Fetched:
    page: CheckedPage
    window_end: datetime | None  # windowed dialects: the answer covered [since, window_end)


class SeriesWalk:
    """One timeframe of one run: every closed candle of the window not yet stored, stored once."""

    def __init__(
        self,
        *,
        pool: Pool,
        client: ExchangeClient,
        retry: RetryPolicy,
        clock: Callable[[], datetime],
        series: Series,
        progress: TimeframeProgress,
        backfill_days: int,
        retention_days: int | None,
        empty_range_max_age: timedelta,
        partitions: PartitionCache,
        opened: StoredSeries | None = None,
    ) -> None:
        self.pool = pool
        self.opened = opened  # the series as the run's start read it (None: the walk opens it)
        self.client = client
        self.retry = retry
        self.clock = clock
        self.series = series
        self.progress = progress
        self.backfill_days = backfill_days
        self.retention_days = retention_days
        self.empty_range_max_age = empty_range_max_age
        self.partitions = partitions
        self._known_rejected: set[datetime] = set()
        self._writer: SeriesWriter | None = None
        self._final_offset = timedelta(0)  # candles that closed by clock() + this are final

    async def run(self) -> None:
        """Forward, then the holes; a failure is recorded in ``progress`` and logged, never raised."""
        try:
            await self.client.check_can_fetch(self.series.symbol, self.series.timeframe)
            await self._measure_final_offset()
            state = self.opened or await candles.open_series(self.pool, **self._key())
            self._known_rejected = set(state.rejected_open_times)
            async with SeriesWriter(self.pool, state, self.partitions, on_committed=self.progress.stored) as writer:
                self._writer = writer
                state = await self._forward(state)
                await self._repair_holes(state)
            self.progress.finish()
        except Exception as exc:
            self.progress.fail(type(exc).__name__, self.client.safe_message(exc), self.client.plain_cause(exc))
            if is_outage(exc):
                DATABASE_OUTAGE.unreachable(exc)  # the run's outcome says which timeframes it cost
                return
            expected = isinstance(exc, ccxt.BaseError)
            logger.log(
                logging.WARNING if expected else logging.ERROR,
                "%s: collecting failed after %d retries: %s: %s",
                self.series,
                self.progress.retries,
                self.progress.error_type,
                self.progress.error,
                exc_info=not expected,
            )
        if self.progress.partial:
            logger.warning("%s: %s", self.series, self.progress.error)

    async def reverify(self, start: datetime, end: datetime, deadline: float) -> tuple[set[datetime], datetime | None]:
        """Ask the exchange again for the final candles from ``start`` to before ``end`` and store what
        differs: revised values are rewritten, candles not stored are stored. The open times the
        exchange sent, and where the comparison stopped when ``deadline`` (the event loop's time)
        came first (None: it reached ``end``); a failure is recorded in ``progress`` (the pages
        before it are stored). Only waiting on the exchange is cut at the deadline, never a write."""
        sent: set[datetime] = set()
        stopped_at: datetime | None = None
        try:
            async with until(deadline):
                await self.client.check_can_fetch(self.series.symbol, self.series.timeframe)
                await self._measure_final_offset()
            state = await candles.open_series(self.pool, **self._key())
            self._known_rejected = set(state.rejected_open_times)
            async with SeriesWriter(self.pool, state, self.partitions, on_committed=self.progress.stored) as writer:
                self._writer = writer
                newest = next_open(self._newest_closed(), self.series.timeframe)
                stopped_at = await self._compare(start, min(end, newest), sent, deadline)
            self.progress.finish()
        except OutOfTime:
            return sent, start
        except Exception as exc:
            self.progress.fail(type(exc).__name__, self.client.safe_message(exc), self.client.plain_cause(exc))
            if not isinstance(exc, ccxt.BaseError):
                raise
        return sent, stopped_at

    async def _compare(self, start: datetime, end: datetime, sent: set[datetime], deadline: float) -> datetime | None:
        """Page by page from ``start`` to ``end``: every final candle the exchange sends is stored (a
        stored one rewritten only when it changed); ``sent`` collects their open times. Where it
        stopped when the exchange had not sent the next page by ``deadline``; None once at ``end``."""
        since = start
        while since < end:
            try:
                fetched = await self._fetch(
                    since, at_most=candles_in(since, end, self.series.timeframe), deadline=deadline
                )
            except OutOfTime:
                return since
            page = fetched.page
            rows = [row for row in page.rows if row[0] < end]
            sent.update(row[0] for row in rows)
            if rows:
                await self._store(rows)
            if page.still_open is not None:
                return None
            if page.last_open is None:
                if fetched.window_end is None:
                    return None
                since = fetched.window_end
                continue
            since = next_open(page.last_open, self.series.timeframe)
        return None

    def _key(self) -> dict[str, str]:
        return {"exchange": self.series.exchange, "symbol": self.series.symbol, "timeframe": self.series.timeframe}

    def _window_start(self, state: StoredSeries) -> datetime:
        """``backfill_days`` ago (never before what retention drops, nor beyond the exchange's
        reach), or where the exchange's history begins if it said so for this window."""
        days = self.backfill_days if self.retention_days is None else min(self.backfill_days, self.retention_days)
        start = self._within_reach(floor_open(self.clock() - timedelta(days=days), self.series.timeframe))
        earliest, asked_from = state.earliest_available, state.earliest_asked_from
        if earliest is not None and asked_from is not None and asked_from <= start:
            return max(start, earliest)
        return start

    def _within_reach(self, since: datetime) -> datetime:
        """``since``, or the oldest open time the exchange serves when ``since`` is older (what lies
        between is recorded as beyond reach)."""
        profile = self.client.profile
        reach_start = profile.reach_start(self.clock(), self.series.timeframe)
        if reach_start is None or since >= reach_start:
            return since
        message = profile.beyond_reach(self.series.exchange, self.series.timeframe)
        assert message is not None  # a profile with a reach describes it
        self.progress.asked_beyond_reach(since, reach_start, message)
        return reach_start

    def _newest_closed(self) -> datetime:
        """The newest candle that is final: closed by the exchange's clock, or settled by ours."""
        return last_closed_open(self.clock() + self._final_offset, self.series.timeframe)

    async def _measure_final_offset(self) -> None:
        self._final_offset = await self.retry.call(
            lambda: self.client.final_offset(self.clock), on_retry=self._retrying
        )

    # --- forward -------------------------------------------------------------------------------

    async def _forward(self, state: StoredSeries) -> StoredSeries:
        """From after the newest stored candle (or the window start) up to the newest closed candle;
        the series as it is known after (where its history begins may have been learnt).

        The next page is asked for (and waits for the rate limiter) while this one is stored, never
        more than one page ahead.
        """
        timeframe = self.series.timeframe
        leading = state.newest is None  # nothing stored yet: the first answer says where history begins
        if state.newest is None:
            fresh_from = since = self._window_start(state)
        else:
            fresh_from = self._within_reach(next_open(state.newest, timeframe))
            since = min(self._revisions_from(state), fresh_from)
        asked_from = since
        empty_from: datetime | None = None  # windowed: the start of the empty windows in a row so far
        pending = self._ask(since)
        try:
            while pending is not None:
                since, fetching = pending
                fetched = await self._answer_committing(fetching)
                pending = None
                page, first = fetched.page, fetched.page.first_open
                if first is None:
                    if fetched.window_end is None or page.still_open is not None:
                        return state  # caught up: the exchange has nothing final from `since` on
                    if page.trusted:
                        empty_from = empty_from or since
                    elif empty_from is not None:  # broken candles in this window: it confirms nothing
                        if not leading:
                            await self._remember_empty(empty_from, since)
                        empty_from = None
                    pending = self._ask(fetched.window_end)  # windowed: nothing in this window, the next may have
                    continue
                if page.trusted and first > (empty_from or since):
                    if leading:
                        state = await self._remember_history_start(state, first, asked_from)
                    else:
                        await self._remember_empty(max(empty_from or since, fresh_from), first)
                elif empty_from is not None and not leading:
                    await self._remember_empty(empty_from, since)  # the empty windows before this page
                leading, empty_from = False, None
                assert page.last_open is not None  # there is a first candle, so a last one
                if page.still_open is None:
                    pending = self._ask(next_open(page.last_open, timeframe))  # always advances: the page is >= since
                if page.rows:
                    await self._store(page.rows, more_coming=pending is not None)
            return state
        finally:
            if pending is not None:
                pending[1].cancel()
                await asyncio.gather(pending[1], return_exceptions=True)

    def _revisions_from(self, state: StoredSeries) -> datetime:
        """Where the forward walk starts to ask again for the newest ``REVISED_CANDLES`` stored candles
        (in its first request, with the new ones), so that what the exchange revised is stored too;
        never before the window, nor before what the exchange serves."""
        assert state.newest is not None
        timeframe = self.series.timeframe
        starts = [self._window_start(state), shift_open(state.newest, timeframe, 1 - REVISED_CANDLES)]
        reach_start = self.client.profile.reach_start(self.clock(), timeframe)
        return max(starts if reach_start is None else [*starts, reach_start])

    async def _answer_committing(self, fetching: asyncio.Task[Fetched]) -> Fetched:
        """The answer being fetched; meanwhile, the pages waiting are committed once they are due."""
        assert self._writer is not None
        while (delay := self._writer.seconds_until_commit()) is not None:
            done, _ = await asyncio.wait({fetching}, timeout=delay)
            if done:
                break
            await self._writer.commit()
        return await fetching

    def _ask(self, since: datetime) -> tuple[datetime, asyncio.Task[Fetched]] | None:
        """Start fetching the page from ``since`` (None past the newest closed candle)."""
        if since > self._newest_closed():
            return None
        return since, asyncio.create_task(self._fetch(since), name=f"fetch {self.series}")

    # --- holes ---------------------------------------------------------------------------------

    async def _repair_holes(self, state: StoredSeries) -> None:
        since = self._window_start(state)
        if not self._may_have_holes(state, since):
            return
        holes = await candles.find_holes(
            self.pool,
            **self._key(),
            since=since,
            confirmed_after=self.clock() - self.empty_range_max_age,
            limit=MAX_HOLES_PER_RUN,
        )
        for hole in holes:
            await self._repair(hole)
            self.progress.holes_repaired += 1

    def _may_have_holes(self, state: StoredSeries, since: datetime) -> bool:
        """Whether the series may miss candles from ``since`` on (what ``find_holes`` looks for).

        It may when it had no candle when opened, its first candle was after ``since``, or a gap of
        it ended after ``since``; or when this walk recorded a gap. Otherwise every candle the walk
        stored went next to stored ones, which leaves no hole.
        """
        assert self._writer is not None
        if self._writer.recorded_gaps or state.first is None:
            return True
        return state.first > since or (state.newest_gap_end is not None and state.newest_gap_end > since)

    async def _repair(self, hole: Hole) -> None:
        """Ask for one hole again; what the exchange confirms has no candles is remembered as empty.

        Empty windows in a row (windowed dialects) make one empty stretch, remembered once.
        """
        await candles.forget_empty_ranges_in(self.pool, **self._key(), start=hole.start, end=hole.end)
        since = hole.start
        empty_from: datetime | None = None  # start of the stretch confirmed empty so far
        while since < hole.end:
            # the hole's candles plus the stored one after it, which confirms an empty stretch
            at_most = candles_in(since, hole.end, self.series.timeframe) + 1
            fetched = await self._fetch(since, at_most=at_most, known_later=hole.end)
            page, first = fetched.page, fetched.page.first_open
            if first is None:
                if fetched.window_end is None:
                    return
                if page.trusted:
                    empty_from = empty_from or since
                elif empty_from is not None:  # broken candles in this window: it confirms nothing
                    await self._remember_empty(empty_from, since)
                    empty_from = None
                since = fetched.window_end
                continue
            if page.trusted:
                await self._remember_empty(empty_from or since, min(first, hole.end))
            elif empty_from is not None:
                await self._remember_empty(empty_from, since)
            empty_from = None
            inside = [row for row in page.rows if row[0] < hole.end]
            if inside:
                await self._store(inside)
            assert page.last_open is not None
            since = next_open(page.last_open, self.series.timeframe)
        if empty_from is not None:
            await self._remember_empty(empty_from, hole.end)

    async def _remember_empty(self, start: datetime, end: datetime) -> None:
        """The exchange confirmed it has no candle from ``start`` up to ``end`` (not an unverified one)."""
        if end > start and self.client.profile.verified:
            await candles.remember_empty_range(
                self.pool, **self._key(), start=start, end=end, confirmed_at=self.clock()
            )

    async def _remember_history_start(
        self, state: StoredSeries, earliest: datetime, asked_from: datetime
    ) -> StoredSeries:
        """The exchange has nothing before ``earliest`` when asked from ``asked_from`` (not an unverified
        one); the series as it is known after."""
        if not self.client.profile.verified:
            return state
        await candles.set_earliest_available(self.pool, **self._key(), earliest=earliest, asked_from=asked_from)
        return msgspec.structs.replace(state, earliest_available=earliest, earliest_asked_from=asked_from)

    # --- one page ------------------------------------------------------------------------------

    async def _fetch(
        self,
        since: datetime,
        *,
        at_most: int | None = None,
        known_later: datetime | None = None,
        deadline: float | None = None,
    ) -> Fetched:
        """One page from ``since``, checked, asked again while the answer cannot be trusted.

        ``known_later``: a candle the exchange has after ``since`` (an empty answer is then wrong).
        ``deadline``: :class:`OutOfTime` when the exchange has not answered by then (the event loop's time).
        """
        series, client = self.series, self.client
        request = client.dialect.page_request(
            client, series.symbol, series.timeframe, since, self.clock(), at_most or client.page_limit(series.symbol)
        )

        async def attempt() -> CheckedPage:
            raw = await client.fetch_ohlcv(series.symbol, series.timeframe, to_ms(since), request.limit, request.params)
            self.progress.pages += 1
            page = check_candles(
                raw,
                timeframe=series.timeframe,
                since=since,
                newest_closed=self._newest_closed(),
                window_end=request.window_end,
            )
            if any(r.open_time not in self._known_rejected for r in page.rejected):
                raise InvalidCandle(series.exchange, page)
            if page.first_open is None and page.still_open is None:
                await self._check_nothing_later(since, request.window_end, known_later)
            return page

        try:
            async with until(deadline):
                page = await self.retry.call(attempt, on_retry=self._retrying)
        except InvalidCandle as exc:  # the exchange keeps sending them: keep the good ones
            page = exc.page
        if page.rejected:
            await self._reject(page.rejected)
        return Fetched(page, request.window_end)

    async def _check_nothing_later(
        self, since: datetime, window_end: datetime | None, known_later: datetime | None
    ) -> None:
        """An empty answer from ``since`` (up to ``window_end``, if windowed): ``BadResponse`` if wrong.

        It is wrong when it covers a candle the exchange is known to have (``known_later``), or,
        while the series is more than ``CAUGHT_UP_SLACK`` candles behind, one the exchange serves
        when asked from near the newest closed candle.
        """
        series, later = self.series, known_later
        if later is None:
            newest_closed = self._newest_closed()
            probe_since = shift_open(newest_closed, series.timeframe, -CAUGHT_UP_SLACK)
            if since >= probe_since or (window_end is not None and window_end <= probe_since):
                return  # caught up, or an empty window well before the newest candles
            probe = self.client.dialect.page_request(
                self.client, series.symbol, series.timeframe, probe_since, self.clock(), CAUGHT_UP_SLACK + 1
            )
            raw = await self.client.fetch_ohlcv(
                series.symbol, series.timeframe, to_ms(probe_since), probe.limit, probe.params
            )
            self.progress.pages += 1
            later = check_candles(
                raw,
                timeframe=series.timeframe,
                since=probe_since,
                newest_closed=newest_closed,
                window_end=probe.window_end,
            ).first_open
        if later is not None and (window_end is None or later < window_end):
            raise ccxt.BadResponse(
                f"{series.exchange} answered no candles from {since.isoformat()} "
                f"although it has one at {later.isoformat()}"
            )

    def _retrying(self, exc: BaseException, retry: int, seconds: float) -> None:
        self.progress.retries += 1
        paused = self.client.pause.remaining_seconds
        logger.info(
            "%s: retry %d of %d in %.1f s%s after %s: %s",
            self.series,
            retry,
            self.retry.max_retries,
            seconds,
            f" (exchange paused for {paused:.1f} s)" if paused else "",
            type(exc).__name__,
            self.client.safe_message(exc),
        )

    async def _reject(self, rejected: list[Rejection]) -> None:
        """Broken candles the exchange kept sending: recorded, counted, never stored."""
        self.progress.reject(rejected)
        placed = [(r.open_time, r.reason) for r in rejected if r.open_time is not None]
        if placed:
            await candles.record_rejected_candles(self.pool, **self._key(), rejections=placed, rejected_at=self.clock())
            self._known_rejected.update(open_time for open_time, _ in placed)

    async def _store(self, rows: list[CandleRow], *, more_coming: bool = False) -> None:
        """The one place a page of checked candles is stored (see ``SeriesWriter.store``)."""
        assert self._writer is not None
        await self._writer.store(rows, more_coming=more_coming)
