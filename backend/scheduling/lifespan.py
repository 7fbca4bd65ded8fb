"""The web app's part of scheduling, opened by the app's lifespan after the pool and the collector.

- ``inprocess``: start the in-process scheduler (it runs the collector's runs); stop it at shutdown.
- ``arq``: no scheduler here; manual triggers are queued for the workers.
- ``off``: nothing runs; manual triggers answer 503.

Either way ``app.state.manual_trigger`` is what ``POST /configs/{id}/trigger`` calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from litestar import Litestar

from backend.scheduling.queue import ArqRunQueue
from backend.scheduling.runs import SchedulingOff
from backend.scheduling.scheduler import InProcessScheduler
from backend.settings import Settings


@asynccontextmanager
async def open_scheduling(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.scheduler_backend == "inprocess":
        scheduler = InProcessScheduler(
            app.state.pool,
            settings=settings,
            run_job=app.state.collector.execute_run,
            exchange_activity=app.state.exchanges.activity,
        )
        await scheduler.start()
        app.state.manual_trigger = scheduler
        try:
            yield
        finally:
            await scheduler.stop()
        return
    if settings.scheduler_backend == "arq":
        redis = ArqRedis(connection_pool=app.state.redis.connection_pool)
        app.state.manual_trigger = ArqRunQueue(app.state.pool, redis, queue_name=settings.arq_queue_name)
    else:
        app.state.manual_trigger = SchedulingOff()
    yield
