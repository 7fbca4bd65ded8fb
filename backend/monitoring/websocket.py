"""``/api/v1/admin/data-collection/events``: the live events as a WebSocket, with the REST routes' auth.

Browsers cannot set headers on a WebSocket, so the JWT comes as the ``token`` query parameter, or
as the first message (the bare token or ``{"token": "..."}``); an ``Authorization`` header works
too. The server answers ``{"type": "ready"}``, then sends each event as one JSON text message.
A missing or bad token closes the connection with code 1008, and so do the token's expiry and the
user's deactivation or deletion while the stream is open (log in again and reconnect); 1011 when
this process cannot listen to PostgreSQL, 1013 when the client reads too slowly (reconnect and
refetch).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.security.jwt import JWTAuth
from litestar.status_codes import WS_1008_POLICY_VIOLATION, WS_1011_INTERNAL_ERROR

from backend.auth.schemas import User
from backend.auth.tokens import bearer_token, retrieve_user
from backend.auth.user_cache import UserCache
from backend.monitoring.events import EventHub, Subscription
from backend.waiting import cancel_and_wait, wait_for_event

EVENTS_PATH = "/api/v1/admin/data-collection/events"
FIRST_MESSAGE_TIMEOUT_SECONDS = 10.0
LISTENER_WAIT_SECONDS = 5.0  # "ready" is sent once this process listens: no event after it is missed
READY = '{"type": "ready"}'
TOO_SLOW_CLOSE_CODE = 1013  # "try again later": the client fell too far behind


class TokenMessage(msgspec.Struct):
    token: str


async def _token(socket: WebSocket[Any, Any, Any]) -> str:
    token: str | None = socket.query_params.get("token")
    if token:
        return token
    if token := bearer_token(socket.headers.get("authorization", "")):
        return token
    async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_SECONDS):
        message = (await socket.receive_text()).strip()
    if message.startswith("{"):
        return msgspec.json.decode(message, type=TokenMessage).token
    return message


async def _authenticate(socket: WebSocket[Any, Any, Any]) -> tuple[User, datetime] | None:
    """The active user whose valid token the client sent, as every REST route checks it, and when
    that token expires."""
    jwt_auth: JWTAuth[User] = socket.app.state.jwt_auth
    try:
        encoded = await _token(socket)
        token = jwt_auth.token_cls.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    except (NotAuthorizedException, WebSocketDisconnect, TimeoutError, msgspec.ValidationError, msgspec.DecodeError):
        return None
    user = await retrieve_user(token, socket)
    return None if user is None else (user, token.exp)


async def _send_events(socket: WebSocket[Any, Any, Any], subscription: Subscription) -> None:
    while (event := await subscription.next_event()) is not None:
        await socket.send_text(event)
    await socket.close(code=TOO_SLOW_CLOSE_CODE, reason="Too many events waiting: reconnect and refetch")


async def _until_access_lost(socket: WebSocket[Any, Any, Any], subscription: Subscription) -> None:
    """Close with 1008 once the user is no longer active (checked each time the user changes)."""
    users: UserCache = socket.app.state.user_cache
    while True:
        await subscription.access_changed.wait()
        subscription.access_changed.clear()
        if await users.active_user(subscription.user_id) is None:
            await socket.close(code=WS_1008_POLICY_VIOLATION, reason="Access revoked")
            return


async def _until_token_expires(socket: WebSocket[Any, Any, Any], expires_at: datetime) -> None:
    """Close with 1008 when the token expires: from then on the REST routes refuse it too."""
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()))
    await socket.close(code=WS_1008_POLICY_VIOLATION, reason="The access token expired: log in again")


async def _until_client_leaves(socket: WebSocket[Any, Any, Any]) -> None:
    async for _ in socket.iter_data("text"):
        pass  # clients have nothing to say after the token


@websocket(EVENTS_PATH, opt={"exclude_from_auth": True})
async def stream_events(socket: WebSocket[Any, Any, Any]) -> None:
    """Run started / finished and config changed events, as they are committed by any process."""
    await socket.accept()
    authenticated = await _authenticate(socket)
    if authenticated is None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone already
            await socket.close(code=WS_1008_POLICY_VIOLATION, reason="A valid access token is required")
        return
    user, expires_at = authenticated
    hub: EventHub = socket.app.state.event_hub
    subscription = hub.subscribe(user.id)
    subscription.access_changed.set()  # a change heard between the token check and subscribing counts too
    try:
        if not await wait_for_event(hub.listening, LISTENER_WAIT_SECONDS):
            await socket.close(code=WS_1011_INTERNAL_ERROR, reason="Live events are unavailable, retry shortly")
            return
        await socket.send_text(READY)
        tasks = {
            asyncio.create_task(_send_events(socket, subscription)),
            asyncio.create_task(_until_client_leaves(socket)),
            asyncio.create_task(_until_access_lost(socket, subscription)),
            asyncio.create_task(_until_token_expires(socket, expires_at)),
        }
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(pending, expected=(WebSocketDisconnect,))  # the client may be gone already
        for task in done:
            with contextlib.suppress(WebSocketDisconnect):
                task.result()
    finally:
        hub.unsubscribe(subscription)
