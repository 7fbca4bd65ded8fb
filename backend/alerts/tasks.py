"""The alerts' two loops in one process: the evaluator, and the webhook delivery when a URL is set.

Every web process (whatever its ``SCHEDULER_BACKEND``) and every arq worker runs them, each an
asyncio task of its own beside collection: a process whose scheduler died still evaluates, and
evaluation or a slow receiver never holds up a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

from backend.alerts.evaluation import Evaluator
from backend.alerts.webhook import WebhookDelivery
from backend.db.pool import Pool
from backend.settings import Settings
from backend.waiting import cancel_and_wait


class AlertTasks:
    def __init__(self, pool: Pool, *, settings: Settings) -> None:
        self._delivery = WebhookDelivery(pool, settings=settings) if settings.alert_webhook_url is not None else None
        self._evaluator = Evaluator(pool, settings=settings, on_queued=self._wake_delivery)
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._evaluator.run(), name="alert evaluation"))
        if self._delivery is not None:
            self._tasks.append(asyncio.create_task(self._delivery.run(), name="alert webhook delivery"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def _wake_delivery(self) -> None:
        if self._delivery is not None:
            self._delivery.wake()


@asynccontextmanager
async def open_alerts(app: Litestar) -> AsyncIterator[None]:
    """The web process's alert loops, from start-up to shutdown."""
    tasks = AlertTasks(app.state.pool, settings=app.state.settings)
    tasks.start()
    try:
        yield
    finally:
        await tasks.stop()
