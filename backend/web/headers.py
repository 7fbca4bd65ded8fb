"""Response headers every answer carries: security headers and the request id; attachment names."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from litestar.config.app import AppConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backend.log_config import REQUEST_ID

REQUEST_ID_HEADER = "X-Request-ID"
# Heroku's router sends one; a client's own is kept when it looks like an id, never echoed otherwise
INCOMING_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# only where a route set no policy of its own (the dashboard sets a strict one)
FRAME_ANCESTORS = "frame-ancestors 'none'"
HSTS = "max-age=31536000"
SAFE_FILENAME_CHARACTER = re.compile(r"[^A-Za-z0-9._-]")


def attachment(filename: str) -> str:
    """``Content-Disposition`` for a download: an ASCII ``filename`` any client reads safely, and the
    exact name as RFC 6266 / RFC 5987 ``filename*`` (UTF-8, percent-encoded)."""
    ascii_name = SAFE_FILENAME_CHARACTER.sub("_", filename)
    exact = "".join(ch for ch in filename if ch.isprintable())
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(exact, safe='')}"


def security_headers(*, production: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    """A ``before_send`` hook adding the security headers (and HSTS in production over HTTPS) to
    every response, without replacing a header the route set."""

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:
                headers[name] = value
        if "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = FRAME_ANCESTORS
        if production and scope.get("scheme") == "https" and "Strict-Transport-Security" not in headers:
            headers["Strict-Transport-Security"] = HSTS
        request_id = REQUEST_ID.get()
        if request_id is not None and REQUEST_ID_HEADER not in headers:
            headers[REQUEST_ID_HEADER] = request_id

    return add_headers


def request_id_first(app_config: AppConfig) -> AppConfig:
    """``on_app_init``, after the auth's: :class:`RequestIdMiddleware` runs before every other
    middleware, so that the authentication's own log lines carry the request id too."""
    app_config.middleware.insert(0, RequestIdMiddleware)
    return app_config


class RequestIdMiddleware:
    """Gives every request an id (the incoming ``X-Request-ID`` when it looks like one), kept in
    :data:`backend.log_config.REQUEST_ID` so every log line of the request carries it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
        # Not reset afterwards: the exception handlers, outside every middleware, log after this
        # returns; the value dies with the request's task (the server runs each in its own).
        REQUEST_ID.set(incoming if INCOMING_REQUEST_ID.match(incoming) else uuid.uuid4().hex)
        await self.app(scope, receive, send)
