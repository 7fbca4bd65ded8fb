"""Writing the candles of one series as a walk hands them over.

A page newer than everything stored is appended with a plain COPY (no staging, no conflict
check); any other page (hole repair, a range fetched again, with the new candles after it) is
merged whole, in one statement, which rewrites a stored candle only when the exchange changed
it. The coverage summary is updated in the same transaction. Consecutive appended pages may
share a transaction (and one COPY): a crash then loses only candles newer than the newest
committed one, which the next run fetches again. While more pages are coming, that transaction
commits behind the caller, so the database writes one batch while the next one is being fetched.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import cast

from backend.collection import repository
from backend.collection.repository import CandleRow, Merged, StoredSeries
from backend.collection.summary import Period, change_after_insert
from backend.collection.timeframes import to_minute
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.db.pool import Connection, Pool

logger = logging.getLogger(__name__)

# appended pages one transaction may hold while more keep coming, and how long the first of them
# may wait for it (a crash loses at most these; the next run fetches them again)
MAX_PAGES_PER_TRANSACTION = 50
COMMIT_WITHIN_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A page whose candles are committed."""

    first: datetime
    last: datetime
    records: int  # candles inserted or changed
    revised: int = 0  # of those, stored candles the exchange changed


class PartitionCache:
    """The time partitions known to exist, per timeframe; missing ones are created on first need."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._known: dict[str, list[Period]] = {}

    def covering(self, timeframe: str, first: int, last: int) -> list[Period] | None:
        """The known partitions holding minutes ``first``..``last``; None when one may be missing."""
        known = self._known.get(timeframe, [])
        index = bisect.bisect_right(known, first, key=lambda period: period.start) - 1
        if index < 0 or known[index].end <= first:
            return None
        periods = [known[index]]
        while periods[-1].end <= last:
            index += 1
            if index == len(known) or known[index].start != periods[-1].end:
                return None
            periods.append(known[index])
        return periods

    async def ensure(self, timeframe: str, first: int, last: int) -> list[Period]:
        """Like :meth:`covering`, creating what is missing (never call it inside a writing transaction)."""
        periods = self.covering(timeframe, first, last)
        if periods is None:
            periods = await repository.create_partitions(self._pool, timeframe=timeframe, first=first, last=last)
            known = {period.start: period for period in self._known.get(timeframe, [])}
            known.update((period.start, period) for period in periods)
            self._known[timeframe] = sorted(known.values(), key=lambda period: period.start)
        return periods


@dataclass(frozen=True, slots=True)
class _Page:
    """A page waiting for its transaction: its rows and their open minutes."""

    rows: Sequence[CandleRow]
    minutes: list[int]

    def split_after(self, minute: int) -> tuple[_Page, _Page | None]:
        """The candles up to ``minute`` (the first one is), and those after it (None: none is)."""
        cut = bisect.bisect_right(self.minutes, minute)
        if cut == len(self.minutes):
            return self, None
        return _Page(self.rows[:cut], self.minutes[:cut]), _Page(self.rows[cut:], self.minutes[cut:])


class SeriesWriter:
    """Stores the pages of one series, oldest to newest or not; use it as ``async with``.

    Pages newer than everything stored wait in memory and go in with one COPY when the transaction
    commits: after each page unless the caller says ``more_coming``, and at least every
    ``MAX_PAGES_PER_TRANSACTION`` pages or ``COMMIT_WITHIN_SECONDS`` (a caller waiting for its next
    page asks :meth:`seconds_until_commit`). When more pages are coming, that commit goes on behind
    the caller: ``store`` returns at once, and the next commit (or a merge) waits for it first, so
    one commit at a time is under way and its error is raised there. Any other page is merged at
    once, whole (also the new candles after the stored ones it begins with, as a walk's first page
    has), in a transaction of its own. ``on_committed`` hears of every page once it is committed
    (of a merged page, as up to two: the candles that may have been stored, and those after them).
    Leaving the block commits what is pending, also when the block raised; when it was cancelled,
    the pending pages are dropped (and the commit under way is cancelled). ``recorded_gaps`` says
    whether a write recorded a gap of the series (candles missing between two stored ones).
    """

    def __init__(
        self,
        pool: Pool,
        series: StoredSeries,
        partitions: PartitionCache,
        *,
        on_committed: Callable[[StoredPage], None] = lambda page: None,
    ) -> None:
        self.series = series
        self._pool = pool
        self._partitions = partitions
        self._on_committed = on_committed
        # the newest candle stored or waiting; checked again under the series lock at each commit
        self._newest: int | None = to_minute(series.newest) if series.newest is not None else None
        self._appends: list[_Page] = []
        self._first_waiting_since = 0.0  # monotonic time the first waiting page was stored
        self._committing: asyncio.Task[None] | None = None  # the commit under way behind the caller
        # whether a write recorded a gap (new, or one a candle fell into): set before its commit
        self.recorded_gaps = False

    async def __aenter__(self) -> SeriesWriter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.commit()
        elif issubclass(exc_type, Exception):
            # a failed request ends a walk there: what it stored before is good, keep it
            try:
                await self.commit()
            except Exception as commit_error:
                if is_outage(commit_error):
                    DATABASE_OUTAGE.unreachable(commit_error)
                else:
                    series = self.series
                    logger.warning(
                        "%s %s %s: the pages waiting could not be committed",
                        series.exchange,
                        series.symbol,
                        series.timeframe,
                        exc_info=True,
                    )
        else:
            self._appends = []  # cancelled: the next run fetches them again
            if self._committing is not None:
                self._committing.cancel()
                await asyncio.gather(self._committing, return_exceptions=True)

    async def store(self, rows: Sequence[CandleRow], *, more_coming: bool = False) -> None:
        """Store one page (open times ascending, none repeated).

        A page newer than everything stored waits for the commit, which happens now unless
        ``more_coming`` says the caller is fetching the next page (then up to
        ``MAX_PAGES_PER_TRANSACTION`` pages share one transaction and one COPY, committed behind
        the caller).
        """
        if not rows:
            return
        page = _Page(rows, [to_minute(row[0]) for row in rows])
        if self._newest is not None and page.minutes[0] <= self._newest:
            await self.commit()  # what waits is older: it goes first
            await self._merge(page, stored_up_to=self._newest)
            return
        if not self._appends:
            self._first_waiting_since = time.monotonic()
        self._appends.append(page)
        self._newest = page.minutes[-1]
        if not more_coming:
            await self.commit()
        elif len(self._appends) >= MAX_PAGES_PER_TRANSACTION or self.seconds_until_commit() == 0.0:
            await self._previous_commit()
            self._committing = asyncio.create_task(self._write(self._take_appends()))
        elif self._committing is not None:
            await asyncio.sleep(0)  # a turn for the commit under way, also when the caller never waits

    def seconds_until_commit(self) -> float | None:
        """How long the pages waiting may wait still (None: none waits)."""
        if not self._appends:
            return None
        return max(0.0, self._first_waiting_since + COMMIT_WITHIN_SECONDS - time.monotonic())

    async def commit(self) -> None:
        """Write and commit the pages waiting (nothing when none is)."""
        await self._previous_commit()
        await self._write(self._take_appends())

    async def _previous_commit(self) -> None:
        """Wait for the commit under way behind the caller, if any (raising what it raised).

        When it failed, the pages waiting since are dropped too: stored after it, they would leave
        a hole behind the newest candle; the next run fetches them all again.
        """
        committing, self._committing = self._committing, None
        if committing is not None:
            try:
                await committing
            except BaseException:
                self._appends = []
                raise

    def _take_appends(self) -> list[_Page]:
        pages, self._appends = self._appends, []
        return pages

    async def _write(self, pages: list[_Page]) -> None:
        if not pages:
            return
        minutes = [minute for page in pages for minute in page.minutes]
        periods = await self._periods(minutes[0], minutes[-1])
        series_id = self.series.id
        async with self._pool.acquire() as proxy, proxy.transaction():
            conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
            await repository.lock_series(conn, series_id=series_id)
            newest = await repository.newest_minute(conn, series_id=series_id)
            if newest is not None and minutes[0] <= newest:
                # another writer stored some of these meanwhile: merge them instead
                merges = [(page, await self._merge_in(conn, page, periods)) for page in pages]
                written = [merged.part(min(page.minutes), max(page.minutes)) for page, merged in merges]
            else:
                rows = [row for page in pages for row in page.rows]
                await repository.copy_candles(conn, series_id=series_id, minutes=minutes, rows=rows, periods=periods)
                change = change_after_insert(
                    self.series.timeframe, minutes, first=newest, last=newest, gaps=[], periods=periods
                )
                self.recorded_gaps = self.recorded_gaps or bool(change.gaps)
                await repository.apply_summary(conn, series_id=series_id, change=change)
                written = [(len(page.rows), 0) for page in pages]
        for page, (records, revised) in zip(pages, written, strict=True):
            self._on_committed(
                StoredPage(first=page.rows[0][0], last=page.rows[-1][0], records=records, revised=revised)
            )

    async def _merge(self, page: _Page, *, stored_up_to: int) -> None:
        """Merge one page in a transaction of its own. Its candles up to ``stored_up_to`` (the newest
        one stored or waiting before it) and those after it are heard of as two pages, as the walk
        counts them: what it asked again, and what is new."""
        periods = await self._periods(page.minutes[0], page.minutes[-1])
        async with self._pool.acquire() as proxy, proxy.transaction():
            conn = cast(Connection, proxy)
            await repository.lock_series(conn, series_id=self.series.id)
            merged = await self._merge_in(conn, page, periods)
        for part in page.split_after(stored_up_to):
            if part is not None:
                records, revised = merged.part(min(part.minutes), max(part.minutes))
                self._on_committed(
                    StoredPage(first=part.rows[0][0], last=part.rows[-1][0], records=records, revised=revised)
                )

    async def _merge_in(self, conn: Connection, page: _Page, periods: list[Period]) -> Merged:
        """Merge one page inside the caller's transaction (which holds the series lock); revised
        candles are counted in the series."""
        series_id = self.series.id
        merged = await repository.merge_candles(conn, series_id=series_id, minutes=page.minutes, rows=page.rows)
        if merged.revised:
            await repository.count_revised(conn, series_id=series_id, revised=merged.revised)
        inserted = merged.inserted
        if inserted:
            change = change_after_insert(
                self.series.timeframe,
                inserted,
                first=merged.first,
                last=merged.last,
                gaps=merged.gaps_around(inserted[0], inserted[-1]),
                periods=periods,
            )
            self.recorded_gaps = self.recorded_gaps or bool(change.gaps)
            await repository.apply_summary(conn, series_id=series_id, change=change)
            self._newest = max(inserted[-1], self._newest if self._newest is not None else inserted[-1])
        return merged

    async def _periods(self, first: int, last: int) -> list[Period]:
        """The partitions for minutes ``first``..``last``, created first when missing (outside any transaction)."""
        return await self._partitions.ensure(self.series.timeframe, first, last)


async def store_candles(pool: Pool, *, exchange: str, symbol: str, timeframe: str, rows: Sequence[CandleRow]) -> int:
    """Store one page in a transaction of its own; how many candles were inserted or changed."""
    series = await repository.open_series(pool, exchange=exchange, symbol=symbol, timeframe=timeframe)
    stored: list[StoredPage] = []
    async with SeriesWriter(pool, series, PartitionCache(pool), on_committed=stored.append) as writer:
        await writer.store(rows)
    return sum(page.records for page in stored)
