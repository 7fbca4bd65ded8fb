"""``HEAD`` and ``OPTIONS`` on every route, as HTTP defines them.

- ``HEAD`` is answered wherever ``GET`` is: the ``GET`` answer (status and headers, a token checked
  as for ``GET``) without its body.
- ``OPTIONS`` lists exactly the methods of the route in ``Allow``, and so does a 405: ``HEAD``
  wherever ``GET`` is. Litestar 2's own ``OPTIONS`` answer lists only the methods of the handlers
  registered at the path before it was made (``/configs`` said ``OPTIONS, POST``).

Both are done once, around the app's request handling, so every route has them without asking.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


def _allow(methods: Iterable[str]) -> str:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def allowed_methods(routes: Iterable[BaseRoute]) -> dict[str, str]:
    """The ``Allow`` value of every HTTP route, by the route's path."""
    return {route.path: _allow(route.methods) for route in routes if isinstance(route, HTTPRoute)}


class HeadAndOptions:
    """Wraps the app's request handling: ``HEAD`` runs as ``GET`` without the body; ``Allow`` is
    rewritten to the route's real methods."""

    def __init__(self, app: ASGIApp, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.allow_by_path = allowed_methods(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        http_scope = scope
        method = http_scope["method"]
        if method == "HEAD":
            http_scope = {**http_scope, "method": "GET"}

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                if "allow" in headers:
                    headers["allow"] = self._allow_for(http_scope, headers["allow"])
            elif method == "HEAD" and message["type"] == "http.response.body":
                message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
            await send(message)

        await self.app(http_scope, receive, send_with_allow)

    def _allow_for(self, scope: HTTPScope, listed: str) -> str:
        """Litestar's ``OPTIONS`` handler knows its route's path; a 405 lists the methods it found."""
        handler = scope.get("route_handler")
        if scope["method"] == "OPTIONS" and handler is not None:
            for path in getattr(handler, "paths", ()):
                if path in self.allow_by_path:
                    return self.allow_by_path[path]
        return _allow(method.strip() for method in listed.split(",") if method.strip())
