"""Live events: one LISTEN connection per process fans PostgreSQL notifications out to subscribers.

Triggers (migration 0004) send ``run_started``, ``run_finished`` and ``config_changed`` on channel
``data_collection_events`` when the writing transaction commits, whichever process wrote. When the
listening connection is lost, subscribers get ``{"type": "resync"}`` once it is back: events may
have been missed, so clients refetch what they show.

The same connection follows ``data_versions`` (ETags) and ``users_changed`` (the user cache, and
the live streams of a user who may have lost access).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar

from backend.auth.user_cache import USERS_CHANNEL, UserCache, changed_user_id
from backend.db.outage import DATABASE_OUTAGE, is_outage
from backend.monitoring.etag import AnswerCache, DataVersions, read_data_version_tokens
from backend.waiting import cancel_and_wait, wait_for_event

logger = logging.getLogger(__name__)

CHANNEL = "data_collection_events"
VERSIONS_CHANNEL = "data_versions"
LISTENER_APPLICATION_NAME = "altar-events-listener"  # how operators spot it in pg_stat_activity
RESYNC = '{"type": "resync"}'
SUBSCRIBER_QUEUE_SIZE = 1000
LIVENESS_CHECK_SECONDS = 30.0
LIVENESS_TIMEOUT_SECONDS = 5.0
RECONNECT_DELAYS_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


class Subscription:
    """The events of one client, in order; ``None`` once it fell too far behind and was dropped.

    ``access_changed`` is set when its user changed (or changes may have gone unheard): the stream
    checks that the user is still active.
    """

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE_SIZE)
        self.access_changed = asyncio.Event()

    async def next_event(self) -> str | None:
        return await self.queue.get()


class EventHub:
    """Subscribers of this process; ``publish`` never waits on a slow one (it is dropped instead).

    ``listening`` is set while the process is LISTENing, i.e. while no event can be missed.
    """

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self.listening = asyncio.Event()

    def subscribe(self, user_id: int) -> Subscription:
        subscription = Subscription(user_id)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, event: str) -> None:
        for subscription in list(self._subscriptions):
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscriptions.discard(subscription)
                subscription.queue.get_nowait()  # make room for the end marker
                subscription.queue.put_nowait(None)

    def user_changed(self, user_id: int | None) -> None:
        """A user changed (``None``: any may have): their streams check that they still have access."""
        for subscription in self._subscriptions:
            if user_id is None or subscription.user_id == user_id:
                subscription.access_changed.set()


async def listen(dsn: str, hub: EventHub, versions: DataVersions, users: UserCache) -> None:
    """Relay events to ``hub``, data versions to ``versions`` and user changes to ``users`` until cancelled.

    When the link drops, ``versions`` and ``users`` are forgotten (readers fall back to the
    tables) and, once it is back, subscribers get a resync and check their user's access again.
    """

    def on_user_changed(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        user_id = changed_user_id(str(payload))
        users.forget_user(user_id)
        hub.user_changed(user_id)

    attempt = 0
    connected_before = False
    while True:
        conn: asyncpg.Connection[Any] | None = None
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": LISTENER_APPLICATION_NAME})
            lost = _termination_event(conn)
            await conn.add_listener(CHANNEL, lambda _conn, _pid, _channel, payload: hub.publish(payload))
            await conn.add_listener(VERSIONS_CHANNEL, lambda _conn, _pid, _channel, token: versions.apply(token))
            await conn.add_listener(USERS_CHANNEL, on_user_changed)
            users.start_listening()
            versions.reset(await read_data_version_tokens(conn))
            if connected_before:
                hub.user_changed(None)
                hub.publish(RESYNC)
            connected_before = True
            attempt = 0
            hub.listening.set()
            DATABASE_OUTAGE.reachable()
            await _wait_until_lost(conn, lost)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if is_outage(exc):
                DATABASE_OUTAGE.unreachable(exc)
            else:
                logger.warning("event listener: PostgreSQL refused it (%s: %s)", type(exc).__name__, exc)
        except Exception:
            logger.exception("event listener: unexpected error; reconnecting")
        finally:
            hub.listening.clear()
            versions.forget()
            users.stop_listening()
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(RECONNECT_DELAYS_SECONDS[min(attempt, len(RECONNECT_DELAYS_SECONDS) - 1)])
        attempt += 1


def _termination_event(conn: asyncpg.Connection[Any]) -> asyncio.Event:
    """An event set when the server or the network closes ``conn``."""
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _: lost.set())
    return lost


async def _wait_until_lost(conn: asyncpg.Connection[Any], lost: asyncio.Event) -> None:
    """Return when the server closes the connection, or when it stops answering a periodic probe."""
    while not await wait_for_event(lost, LIVENESS_CHECK_SECONDS):
        await conn.fetchval("SELECT 1", timeout=LIVENESS_TIMEOUT_SECONDS)


@asynccontextmanager
async def open_monitoring(app: Litestar) -> AsyncIterator[None]:
    """The answer cache of polled routes, the event hub, data versions and the user cache, and the
    listener task that keeps them current."""
    app.state.answer_cache = AnswerCache()
    app.state.event_hub = EventHub()
    app.state.data_versions = DataVersions()
    app.state.user_cache = UserCache(app.state.pool)
    listener = asyncio.create_task(
        listen(app.state.settings.database_url, app.state.event_hub, app.state.data_versions, app.state.user_cache)
    )
    try:
        yield
    finally:
        await cancel_and_wait([listener])
