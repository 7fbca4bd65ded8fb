"""Writing the candles of one series as a walk hands them over.

A page newer than everything stored is appended with a plain COPY (no staging, no conflict
check); any other page (hole repair, a range fetched again) is merged, which rewrites a stored
candle only when the exchange changed it. The coverage summary is updated in the same
transaction. Consecutive pages may share a transaction: a crash then loses only candles newer
than the newest committed one, which the next run fetches again from there.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from backend.collection import repository
from backend.collection.repository import CandleRow, StoredSeries
from backend.collection.summary import Period, SummaryChange, change_after_insert
from backend.collection.timeframes import to_minute
from backend.db.pool import Connection, Pool

# pages one transaction may hold while more keep coming (a crash loses at most these)
MAX_PAGES_PER_TRANSACTION = 20


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A page whose candles are committed."""

    first: datetime
    last: datetime
    records: int  # candles inserted or changed


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


class SeriesWriter:
    """Stores the pages of one series, oldest to newest or not; use it as ``async with``.

    ``on_committed`` hears of every page once it is committed. Leaving the block commits what is
    pending, or rolls it back when the block raised (or was cancelled).
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
        self._newest: int | None = None  # read under the series lock when a transaction begins
        self._proxy: PoolConnectionProxy[Any] | None = None
        self._conn: Connection | None = None
        self._transaction: Transaction | None = None
        self._uncommitted: list[StoredPage] = []
        self._appended: SummaryChange | None = None  # the summary change of appends not applied yet

    async def __aenter__(self) -> SeriesWriter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self._end(commit=False)

    async def store(self, rows: Sequence[CandleRow], *, more_coming: bool = False) -> None:
        """Store one page (open times ascending, none repeated).

        It is committed now unless ``more_coming`` says the caller has the next page at hand; then
        the transaction stays open for it, up to ``MAX_PAGES_PER_TRANSACTION`` pages.
        """
        if not rows:
            return
        minutes = [to_minute(row[0]) for row in rows]
        timeframe = self.series.timeframe
        periods = self._partitions.covering(timeframe, minutes[0], minutes[-1])
        if periods is None:
            await self.commit()  # creating a partition waits for no writer, but must not hold their locks
            periods = await self._partitions.ensure(timeframe, minutes[0], minutes[-1])
        conn = await self._begin()
        series_id = self.series.id
        if self._newest is None or minutes[0] > self._newest:
            await repository.copy_candles(conn, series_id=series_id, minutes=minutes, rows=rows)
            written = len(rows)
            change = change_after_insert(
                timeframe, minutes, first=self._newest, last=self._newest, gaps=[], periods=periods
            )
            # appends only ever add to the summary: apply them once, before the commit
            if self._appended is None:
                self._appended = change
            else:
                self._appended.then(change)
            self._newest = minutes[-1]
        else:
            await self._apply_appended()  # the merge below reads the summary
            merged = await repository.merge_candles(conn, series_id=series_id, minutes=minutes, rows=rows)
            written, inserted = merged.written, merged.inserted
            if inserted:
                around = await repository.summary_around(
                    conn, series_id=series_id, first=inserted[0], last=inserted[-1]
                )
                change = change_after_insert(
                    timeframe,
                    inserted,
                    first=around["first"],
                    last=around["last"],
                    gaps=[(after, following) for after, following in around["gaps"]],
                    periods=periods,
                )
                await repository.apply_summary(conn, series_id=series_id, change=change)
                self._newest = max(inserted[-1], self._newest)
        self._uncommitted.append(StoredPage(first=rows[0][0], last=rows[-1][0], records=written))
        if not more_coming or len(self._uncommitted) >= MAX_PAGES_PER_TRANSACTION:
            await self.commit()

    async def commit(self) -> None:
        """Commit the pages stored so far (nothing when none is pending)."""
        try:
            await self._apply_appended()
        except BaseException:
            await self._end(commit=False)
            raise
        await self._end(commit=True)

    async def _apply_appended(self) -> None:
        if self._appended is not None and self._conn is not None:
            await repository.apply_summary(self._conn, series_id=self.series.id, change=self._appended)
        self._appended = None

    async def _begin(self) -> Connection:
        if self._conn is None:
            self._proxy = await self._pool.acquire()
            conn = self._conn = cast(Connection, self._proxy)  # the pool hands out a proxy of a Connection
            self._transaction = conn.transaction()
            await self._transaction.start()
            self._newest = await repository.lock_series(conn, series_id=self.series.id)
        return self._conn

    async def _end(self, *, commit: bool) -> None:
        proxy, conn, transaction, pages = self._proxy, self._conn, self._transaction, self._uncommitted
        if proxy is None or conn is None or transaction is None:
            return
        self._proxy, self._conn, self._transaction, self._uncommitted = None, None, None, []
        self._appended = None
        try:
            if commit:
                await transaction.commit()
            elif not conn.is_closed():
                await transaction.rollback()
        finally:
            await self._pool.release(proxy)
        if commit:
            for page in pages:
                self._on_committed(page)


async def store_candles(pool: Pool, *, exchange: str, symbol: str, timeframe: str, rows: Sequence[CandleRow]) -> int:
    """Store one page in a transaction of its own; how many candles were inserted or changed."""
    series = await repository.open_series(pool, exchange=exchange, symbol=symbol, timeframe=timeframe)
    stored: list[StoredPage] = []
    async with SeriesWriter(pool, series, PartitionCache(pool), on_committed=stored.append) as writer:
        await writer.store(rows)
    return sum(page.records for page in stored)
