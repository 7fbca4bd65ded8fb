"""One collection run: every closed candle of every timeframe of a config not yet stored, stored once.

A run's lifecycle lives here: its ``running`` row (``backend.runs.repository.start_run``) is
performed by :meth:`Collector.execute_run`, which loads the exchange's markets, walks every
timeframe in parallel (``walk.SeriesWalk``: forward, then holes) and completes the row with what
each timeframe did.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
from litestar import Litestar

from backend.collection import repository as candles
from backend.collection.causes import plain_cause
from backend.collection.deadline import OutOfTime, deadline_in, until
from backend.collection.exchanges import ExchangeClient, ExchangeClients, RetryPolicy, open_exchange_clients
from backend.collection.repository import CandleQuery, StoredSeries
from backend.collection.schemas import MAX_REVERIFY_CANDLES, Reverified, ReverifyRequest
from backend.collection.storage import PartitionCache
from backend.collection.timeframes import to_ms
from backend.collection.walk import Series, SeriesWalk, TimeframeProgress
from backend.db.outage import DATABASE_OUTAGE, SHUTDOWN_WRITE_SECONDS, is_outage, write_through_outage
from backend.db.pool import Pool
from backend.log_config import logs_run_id
from backend.runs import repository as runs
from backend.runs.completion import RunCompletion
from backend.runs.grouped import GroupedStatements
from backend.runs.schemas import FinalStatus, RunConfig, RunOutcome
from backend.settings import Settings

logger = logging.getLogger(__name__)

MAX_BACKFILL_DAYS = 3650  # a re-verification may reach as far back as any config's window


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        self.partitions = PartitionCache(pool)
        self.completion = RunCompletion(pool)  # runs that end together are written together
        # ... and runs that begin together are begun together
        self.beginning = GroupedStatements(
            functools.partial(candles.begin_runs_reading_series, pool), what="beginning runs"
        )
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
        begun = await self.beginning(run_id)
        if begun == "not running":
            logger.warning("run %s is not running any more: nothing to do", run_id)
            return None
        if begun == "no config":
            await runs.delete_run(self.pool, run_id=run_id)
            return None
        config, stored_series = begun
        started = time.monotonic()
        progress = {timeframe: TimeframeProgress(timeframe) for timeframe in config.timeframes}
        heartbeat = asyncio.create_task(self._beat(run_id), name=f"heartbeat-run-{run_id}")
        try:
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                await self._collect(config, progress, stored_series)
            ended: tuple[str, str] | None = None
        except TimeoutError:
            ended = ("Timeout", f"The run took longer than JOB_TIMEOUT_SECONDS={self.settings.job_timeout_seconds}")
        except asyncio.CancelledError:
            outcome = self._outcome(run_id, config, progress, started, ("Cancelled", "The run was cancelled"))
            await asyncio.shield(self._complete(outcome, give_up_after=SHUTDOWN_WRITE_SECONDS))
            raise
        finally:
            heartbeat.cancel()
        outcome = self._outcome(run_id, config, progress, started, ended)
        await self._complete(outcome)
        return outcome

    async def reverify(self, request: ReverifyRequest) -> Reverified:
        """Compare a stored range of one series with the exchange and repair what differs: candles
        whose values the exchange changed are rewritten, candles it has that were not stored are
        stored. Stored candles it no longer sends are counted, and kept.

        The answer comes within REVERIFY_SECONDS (and the time of the last page's write): what the
        exchange has not sent by then is not compared, and the answer's ``end`` says where the
        comparison stopped; a ``Timeout`` error when nothing could be compared."""
        client = self.exchanges.get(request.exchange)
        progress = TimeframeProgress(request.timeframe)
        sent: set[datetime] = set()
        stopped_at: datetime | None = None
        deadline = deadline_in(self.settings.reverify_seconds)
        if request.end > request.start:  # else nothing to compare
            try:
                async with until(deadline):
                    await self.retry.call(client.ensure_markets, on_retry=lambda *_: None)
            except OutOfTime:
                stopped_at = request.start
            except ccxt.BaseError as exc:
                progress.fail(type(exc).__name__, client.safe_message(exc), client.plain_cause(exc))
            else:
                walk = SeriesWalk(
                    pool=self.pool,
                    client=client,
                    retry=self.retry,
                    clock=self.clock,
                    series=Series(None, request.exchange, request.symbol, request.timeframe),
                    progress=progress,
                    backfill_days=MAX_BACKFILL_DAYS,
                    retention_days=self.settings.candle_retention_days.get(request.timeframe),
                    empty_range_max_age=timedelta(hours=self.settings.empty_range_max_age_hours),
                    partitions=self.partitions,
                )
                sent, stopped_at = await walk.reverify(request.start, request.end, deadline)
        if stopped_at == request.start:
            message = (
                f"{request.exchange} sent nothing to compare within REVERIFY_SECONDS={self.settings.reverify_seconds}"
            )
            progress.fail("Timeout", message, message)
        end = request.end if stopped_at is None else stopped_at
        query = CandleQuery(
            exchange=request.exchange,
            symbol=request.symbol,
            timeframe=request.timeframe,
            start=request.start,
            end=end,
            limit=MAX_REVERIFY_CANDLES,
        )
        sent_ms = {to_ms(open_time) for open_time in sent}
        stored = await candles.read_candles(self.pool, query)
        return Reverified(
            exchange=request.exchange,
            symbol=request.symbol,
            timeframe=request.timeframe,
            start=request.start,
            end=end,
            exchange_candles=len(sent),
            revised=progress.revised,
            inserted=progress.records - progress.revised,
            not_at_exchange=0 if progress.error_type else sum(row[0] not in sent_ms for row in stored),
            rejected=progress.rejected_candles,
            error_type=progress.error_type,
            error=progress.error,
        )

    async def _beat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.settings.run_heartbeat_seconds)
            try:
                await runs.refresh_heartbeat(self.pool, run_id=run_id)
            except Exception as exc:
                if is_outage(exc):
                    DATABASE_OUTAGE.unreachable(exc)
                else:
                    logger.warning("heartbeat of run %s failed (%s)", run_id, type(exc).__name__, exc_info=True)

    async def _complete(self, outcome: RunOutcome, *, give_up_after: float | None = None) -> None:
        """Write the outcome; while the database is unreachable, again until it is back (this process
        owns the run, so it closes it with what it collected), or for ``give_up_after`` seconds."""
        closed = await write_through_outage(
            lambda: self.completion.complete(outcome),
            what=f"the outcome of run {outcome.run_id}",
            give_up_after=give_up_after,
        )
        if not closed:
            logger.warning("run %s had already been closed by someone else; its outcome is dropped", outcome.run_id)

    def _outcome(
        self,
        run_id: int,
        config: RunConfig,
        progress: dict[str, TimeframeProgress],
        started: float,
        ended: tuple[str, str] | None,
    ) -> RunOutcome:
        """Summarise the timeframes; ``ended`` is (error type, message) when the run was cut off."""
        succeeded = [p.timeframe for p in progress.values() if p.succeeded]
        failed = [p for p in progress.values() if not p.succeeded]
        status: FinalStatus = (
            "success" if not failed else "partial" if succeeded or any(p.partial for p in failed) else "failed"
        )
        error_type = error_message = error_cause = None
        if ended is not None:
            status = "failed"
            error_type, error_message = ended
            error_cause = error_message
        elif failed:
            error_type = failed[0].error_type
            error_message = "; ".join(f"{p.timeframe}: {p.error}" for p in failed)
            error_cause = _causes_once(failed, every_timeframe=not succeeded and len(failed) == len(progress))
        metadata: dict[str, Any] = {
            "timeframes_collected": len(succeeded),
            "timeframes_failed": len(config.timeframes) - len(succeeded),
            "timeframes": list(config.timeframes),
            "by_timeframe": {tf: p.as_metadata() for tf, p in progress.items()},
        }
        beyond_reach = {tf: p.beyond_reach.message for tf, p in progress.items() if p.beyond_reach is not None}
        if beyond_reach:  # the run could not get all the config asks for
            metadata["beyond_reach"] = beyond_reach
        return RunOutcome(
            run_id=run_id,
            status=status,
            records_collected=sum(p.records for p in progress.values()),
            duration_seconds=round(time.monotonic() - started, 3),
            error_type=error_type,
            error_message=error_message,
            error_cause=error_cause,
            metadata=metadata,
        )

    async def _collect(
        self, config: RunConfig, progress: dict[str, TimeframeProgress], stored_series: dict[str, StoredSeries]
    ) -> None:
        """All timeframes at once; each one records its own failure and never stops the others."""
        started = time.monotonic()
        label = f"config {config.id} {config.exchange} {config.symbol} {','.join(progress)}"
        client: ExchangeClient | None = None
        try:
            client = self.exchanges.get(config.exchange)
            on_retry = functools.partial(self._markets_retrying, label, client, progress)
            await self.retry.call(client.ensure_markets, on_retry=on_retry)
        except Exception as exc:
            message = client.safe_message(exc) if client else " ".join(str(exc).split())[:500]
            cause = client.plain_cause(exc) if client else plain_cause(exc, exchange=config.exchange)
            for item in progress.values():
                item.fail(type(exc).__name__, message, cause)
                item.duration_seconds = time.monotonic() - started
            expected = isinstance(exc, ccxt.BaseError)
            logger.log(
                logging.WARNING if expected else logging.ERROR,
                "%s: loading markets failed: %s: %s",
                label,
                type(exc).__name__,
                message,
                exc_info=not expected,
            )
            return
        await asyncio.gather(
            *(
                self._collect_timeframe(client, config, item, started, stored_series.get(item.timeframe))
                for item in progress.values()
            )
        )

    def _markets_retrying(
        self,
        label: str,
        client: ExchangeClient,
        progress: dict[str, TimeframeProgress],
        exc: BaseException,
        retry: int,
        seconds: float,
    ) -> None:
        for item in progress.values():
            item.retries += 1
        logger.info(
            "%s: loading markets, retry %d of %d in %.1f s after %s: %s",
            label,
            retry,
            self.retry.max_retries,
            seconds,
            type(exc).__name__,
            client.safe_message(exc),
        )

    async def _collect_timeframe(
        self,
        client: ExchangeClient,
        config: RunConfig,
        item: TimeframeProgress,
        started: float,
        opened: StoredSeries | None,
    ) -> None:
        """Walk one series (``opened``: as the run's start read it; None: not stored yet); its
        duration counts from the run's start (markets loading included)."""
        walk = SeriesWalk(
            pool=self.pool,
            client=client,
            retry=self.retry,
            clock=self.clock,
            series=Series(config.id, config.exchange, config.symbol, item.timeframe),
            progress=item,
            backfill_days=config.backfill_days,
            retention_days=self.settings.candle_retention_days.get(item.timeframe),
            empty_range_max_age=timedelta(hours=self.settings.empty_range_max_age_hours),
            partitions=self.partitions,
            opened=opened,
        )
        try:
            await walk.run()
        finally:
            item.duration_seconds = time.monotonic() - started


def _causes_once(failed: list[TimeframeProgress], *, every_timeframe: bool) -> str:
    """Each distinct cause once: alone when every timeframe of the run failed the same way, else
    after the timeframes it cost (``1m, 5m: cannot reach …; 1h: …``)."""
    timeframes_by_cause: dict[str, list[str]] = {}
    for item in failed:
        timeframes_by_cause.setdefault(item.cause or item.error or "failed", []).append(item.timeframe)
    if every_timeframe and len(timeframes_by_cause) == 1:
        return next(iter(timeframes_by_cause))
    return "; ".join(f"{', '.join(timeframes)}: {cause}" for cause, timeframes in timeframes_by_cause.items())


@asynccontextmanager
async def open_collector(app: Litestar) -> AsyncIterator[None]:
    """App lifespan: the shared exchange clients and the collector (``app.state.collector``).

    Needs ``app.state.pool``, so it comes after the pool in the lifespan list; clients close at the end.
    """
    settings: Settings = app.state.settings
    clients = open_exchange_clients(
        settings.exchange_overrides, app.state.pool, settle_seconds=settings.exchange_settle_seconds
    )
    async with clients as exchanges:
        app.state.exchanges = exchanges
        app.state.collector = Collector(pool=app.state.pool, exchanges=exchanges, settings=settings)
        yield
