"""One collection run: every closed candle of every timeframe of a config not yet stored, stored once.

Per timeframe, in parallel: walk forward page by page from the newest stored candle (or the
backfill start) to the newest closed candle, then repair the holes inside the recent window. A
page that fails after its retries ends that timeframe there, so the next run resumes at the hole.
The run's ``running`` row must exist (``backend.runs.repository.start_run``); :meth:`Collector.execute_run`
performs it and completes the row.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
from litestar import Litestar

from backend.collection import repository as candles
from backend.collection.exchanges import ExchangeClient, ExchangeClients, RetryPolicy, open_exchange_clients
from backend.collection.repository import CandleRow, Hole
from backend.collection.timeframes import (
    FIXED_STEPS,
    candles_between,
    floor_open,
    last_closed_open,
    next_open,
    to_datetime,
    to_ms,
)
from backend.configs import repository as configs
from backend.configs.schemas import Config
from backend.db.pool import Pool
from backend.log_config import logs_run_id
from backend.runs import repository as runs
from backend.runs.schemas import FinalStatus, RunOutcome
from backend.settings import Settings

logger = logging.getLogger(__name__)

MAX_HOLES_PER_RUN = 50  # holes one run repairs per timeframe (the rest wait for the next run)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TimeframeProgress:
    """What one timeframe did in a run; filled in as it goes, so a cut-off run still reports it."""

    timeframe: str
    records: int = 0
    pages: int = 0
    retries: int = 0
    holes_repaired: int = 0
    first_candle: datetime | None = None
    last_candle: datetime | None = None
    duration_seconds: float = 0.0
    error_type: str | None = None
    error: str | None = None
    done: bool = False

    @property
    def succeeded(self) -> bool:
        return self.done and self.error_type is None

    def stored(self, page: list[CandleRow], count: int) -> None:
        self.records += count
        self.first_candle = min(page[0][0], self.first_candle or page[0][0])
        self.last_candle = max(page[-1][0], self.last_candle or page[-1][0])

    def as_metadata(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "first_candle": self.first_candle.isoformat() if self.first_candle else None,
            "last_candle": self.last_candle.isoformat() if self.last_candle else None,
            "pages": self.pages,
            "retries": self.retries,
            "holes_repaired": self.holes_repaired,
            "duration_seconds": round(self.duration_seconds, 3),
            "error_type": self.error_type,
            "error": self.error,
        }


@dataclass(frozen=True)
class Series:
    client: ExchangeClient
    exchange: str
    symbol: str
    timeframe: str


class Collector:
    """Performs runs; one per process, shared by every run (and by the scheduler)."""

    def __init__(
        self,
        *,
        pool: Pool,
        exchanges: ExchangeClients,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.pool = pool
        self.exchanges = exchanges
        self.settings = settings
        self.clock = clock
        self.retry = RetryPolicy(
            max_retries=settings.exchange_max_retries, base_seconds=settings.exchange_retry_base_ms / 1000
        )

    async def collect_now(self, config_id: int) -> RunOutcome | None:
        """Start a manual run of ``config_id`` and perform it (ConflictError while one is running)."""
        run_id = await runs.start_run(self.pool, config_id=config_id, trigger="manual")
        return await self.execute_run(run_id)

    @logs_run_id
    async def execute_run(self, run_id: int) -> RunOutcome | None:
        """Perform the run whose ``running`` row exists, and complete that row.

        Returns None, and deletes the row, when the config was deleted, or is disabled and the run
        was scheduled (a manual run of a disabled config runs). Cancelled from outside: the row is
        completed ``failed``/``Cancelled`` and the cancellation goes on.
        """
        run = await runs.get_running_run(self.pool, run_id=run_id)
        if run is None:
            logger.warning("run %s is not running any more: nothing to do", run_id)
            return None
        config = await configs.get_config(self.pool, config_id=run.config_id) if run.config_id else None
        if config is None or (not config.enabled and run.trigger == "schedule"):
            await runs.delete_run(self.pool, run_id=run_id)
            return None
        await runs.mark_run_started(self.pool, run_id=run_id)
        started = time.monotonic()
        progress = {timeframe: TimeframeProgress(timeframe) for timeframe in config.timeframes}
        heartbeat = asyncio.create_task(self._beat(run_id), name=f"heartbeat-run-{run_id}")
        try:
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                await self._collect(config, progress)
            ended: tuple[str, str] | None = None
        except TimeoutError:
            ended = ("Timeout", f"The run took longer than JOB_TIMEOUT_SECONDS={self.settings.job_timeout_seconds}")
        except asyncio.CancelledError:
            outcome = self._outcome(run_id, config, progress, started, ("Cancelled", "The run was cancelled"))
            await asyncio.shield(self._complete(outcome))
            raise
        finally:
            heartbeat.cancel()
        outcome = self._outcome(run_id, config, progress, started, ended)
        await self._complete(outcome)
        return outcome

    async def _beat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.settings.run_heartbeat_seconds)
            try:
                await runs.refresh_heartbeat(self.pool, run_id=run_id)
            except Exception:
                logger.exception("heartbeat of run %s failed", run_id)

    async def _complete(self, outcome: RunOutcome) -> None:
        closed = await runs.complete_run(
            self.pool,
            run_id=outcome.run_id,
            status=outcome.status,
            duration_seconds=outcome.duration_seconds,
            records_collected=outcome.records_collected,
            error_message=outcome.error_message,
            error_type=outcome.error_type,
            metadata=outcome.metadata,
        )
        if not closed:
            logger.warning("run %s had already been closed by someone else; its outcome is dropped", outcome.run_id)

    def _outcome(
        self,
        run_id: int,
        config: Config,
        progress: dict[str, TimeframeProgress],
        started: float,
        ended: tuple[str, str] | None,
    ) -> RunOutcome:
        """Summarise the timeframes; ``ended`` is (error type, message) when the run was cut off."""
        succeeded = [p.timeframe for p in progress.values() if p.succeeded]
        failed = [p for p in progress.values() if not p.succeeded]
        status: FinalStatus = "success" if not failed else "partial" if succeeded else "failed"
        error_type = error_message = None
        if ended is not None:
            status = "failed"
            error_type, error_message = ended
        elif failed:
            error_type = failed[0].error_type
            error_message = "; ".join(f"{p.timeframe}: {p.error}" for p in failed)
        return RunOutcome(
            run_id=run_id,
            status=status,
            records_collected=sum(p.records for p in progress.values()),
            duration_seconds=time.monotonic() - started,
            error_type=error_type,
            error_message=error_message,
            metadata={
                "timeframes_collected": len(succeeded),
                "timeframes_failed": len(config.timeframes) - len(succeeded),
                "timeframes": list(config.timeframes),
                "by_timeframe": {tf: p.as_metadata() for tf, p in progress.items()},
            },
        )

    async def _collect(self, config: Config, progress: dict[str, TimeframeProgress]) -> None:
        """All timeframes at once; each one records its own failure and never stops the others."""
        try:
            client = self.exchanges.get(config.exchange)
            await self.retry.call(client.ensure_markets, on_retry=lambda _: None)
        except Exception as exc:
            for item in progress.values():
                self._record_failure(item, exc, config.exchange, None)
            return
        await asyncio.gather(
            *(self._collect_timeframe(client, config, item) for item in progress.values()),
        )

    def _record_failure(
        self, item: TimeframeProgress, exc: Exception, exchange: str, client: ExchangeClient | None
    ) -> None:
        item.error_type = type(exc).__name__
        item.error = client.safe_message(exc) if client else " ".join(str(exc).split())[:500]
        item.done = True
        expected = isinstance(exc, ccxt.BaseError)
        logger.log(
            logging.WARNING if expected else logging.ERROR,
            "collecting %s %s failed: %s",
            exchange,
            item.timeframe,
            item.error,
            exc_info=not expected,
        )

    async def _collect_timeframe(self, client: ExchangeClient, config: Config, item: TimeframeProgress) -> None:
        started = time.monotonic()
        series = Series(client, config.exchange, config.symbol, item.timeframe)
        try:
            client.check_can_fetch(config.symbol, item.timeframe)
            await self._forward(series, config, item)
            await self._repair_holes(series, config, item)
            item.done = True
        except Exception as exc:
            self._record_failure(item, exc, config.exchange, client)
        finally:
            item.duration_seconds = time.monotonic() - started

    def _window_start(self, config: Config, timeframe: str, earliest_available: datetime | None) -> datetime:
        start = floor_open(self.clock() - timedelta(days=config.backfill_days), timeframe)
        return max(start, earliest_available) if earliest_available else start

    async def _fetch_page(
        self, series: Series, item: TimeframeProgress, since: datetime, limit: int
    ) -> list[CandleRow]:
        """One request; the answer sorted, de-duplicated, from ``since`` on, only closed candles."""

        def count_retry(exc: BaseException) -> None:
            item.retries += 1
            logger.info("%s %s retrying after %s", series.exchange, series.timeframe, type(exc).__name__)

        raw = await self.retry.call(
            lambda: series.client.fetch_ohlcv(series.symbol, series.timeframe, to_ms(since), limit),
            on_retry=count_retry,
        )
        item.pages += 1
        newest_closed = last_closed_open(self.clock(), series.timeframe)
        page: dict[datetime, CandleRow] = {}
        for candle in raw:
            if len(candle) < 6 or any(value is None for value in candle[:6]):
                continue
            open_time = to_datetime(int(candle[0]))
            if since <= open_time <= newest_closed:
                o, h, low, c, v = (float(value) for value in candle[1:6])
                page[open_time] = (open_time, o, h, low, c, v)
        return [page[open_time] for open_time in sorted(page)]

    async def _store(self, series: Series, item: TimeframeProgress, page: list[CandleRow]) -> None:
        count = await candles.store_candles(
            self.pool, exchange=series.exchange, symbol=series.symbol, timeframe=series.timeframe, rows=page
        )
        item.stored(page, count)

    async def _forward(self, series: Series, config: Config, item: TimeframeProgress) -> None:
        """From after the newest stored candle (or the window start) up to the newest closed candle."""
        state = await candles.series_state(
            self.pool, exchange=series.exchange, symbol=series.symbol, timeframe=series.timeframe
        )
        leading = state.newest is None
        if state.newest is None:
            since = self._window_start(config, series.timeframe, state.earliest_available)
        else:
            since = next_open(state.newest, series.timeframe)
        newest_closed = last_closed_open(self.clock(), series.timeframe)
        limit = series.client.page_limit(series.symbol)
        while since <= newest_closed:
            page = await self._fetch_page(series, item, since, limit)
            if not page:
                break  # nothing at or after `since` yet: caught up (an empty page never loops)
            if leading and page[0][0] > since:
                # the exchange has nothing older (listing, or it keeps limited history): never ask again
                await candles.set_earliest_available(
                    self.pool,
                    exchange=series.exchange,
                    symbol=series.symbol,
                    timeframe=series.timeframe,
                    earliest=page[0][0],
                )
            leading = False
            await self._store(series, item, page)
            since = next_open(page[-1][0], series.timeframe)  # always advances: the page is >= since

    async def _repair_holes(self, series: Series, config: Config, item: TimeframeProgress) -> None:
        state = await candles.series_state(
            self.pool, exchange=series.exchange, symbol=series.symbol, timeframe=series.timeframe
        )
        holes = await candles.find_holes(
            self.pool,
            exchange=series.exchange,
            symbol=series.symbol,
            timeframe=series.timeframe,
            since=self._window_start(config, series.timeframe, state.earliest_available),
            limit=MAX_HOLES_PER_RUN,
        )
        for hole in holes:
            if not await self._repair(series, item, hole):
                return
            item.holes_repaired += 1

    async def _repair(self, series: Series, item: TimeframeProgress, hole: Hole) -> bool:
        """Refetch one hole; what the exchange confirms has no candles is remembered as empty.

        Returns False when the exchange no longer serves candles we have (it skipped past the
        hole's end): its history now starts later, which is recorded, and repair stops.
        """
        since = hole.start
        page_limit = series.client.page_limit(series.symbol)
        while since < hole.end:
            # the hole's candles plus the stored one after it, which confirms an empty stretch
            limit = min(page_limit, _approximate_candles(since, hole.end, series.timeframe) + 1)
            page = await self._fetch_page(series, item, since, limit)
            if not page or page[0][0] > hole.end:
                if page:
                    await candles.set_earliest_available(
                        self.pool,
                        exchange=series.exchange,
                        symbol=series.symbol,
                        timeframe=series.timeframe,
                        earliest=page[0][0],
                    )
                return False
            if page[0][0] > since:
                await candles.remember_empty_range(
                    self.pool,
                    exchange=series.exchange,
                    symbol=series.symbol,
                    timeframe=series.timeframe,
                    start=since,
                    end=min(page[0][0], hole.end),
                )
            inside = [candle for candle in page if candle[0] < hole.end]
            if not inside:
                return True
            await self._store(series, item, inside)
            since = next_open(inside[-1][0], series.timeframe)
        return True


def _approximate_candles(start: datetime, end: datetime, timeframe: str) -> int:
    step = FIXED_STEPS.get(timeframe)
    if step is None:
        return candles_between(start, end, timeframe)
    return max(1, math.ceil((end - start) / step))


@asynccontextmanager
async def open_collector(app: Litestar) -> AsyncIterator[None]:
    """App lifespan: the shared exchange clients and the collector (``app.state.collector``).

    Needs ``app.state.pool``, so it comes after the pool in the lifespan list; clients close at the end.
    """
    settings: Settings = app.state.settings
    async with open_exchange_clients(settings.exchange_overrides) as exchanges:
        app.state.exchanges = exchanges
        app.state.collector = Collector(pool=app.state.pool, exchanges=exchanges, settings=settings)
        yield
