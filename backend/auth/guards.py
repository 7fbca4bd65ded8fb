"""Role checks: viewers read, admins read and write; metrics are read by users or a scrape token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth

from backend.auth.schemas import User
from backend.auth.tokens import bearer_token, retrieve_user
from backend.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def writes_need_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Any signed-in user may read; only admins may change anything. ``OPTIONS`` (which methods a
    route allows, or a CORS preflight) needs no token: browsers never send one with it. (Async:
    Litestar runs a sync guard in a worker thread, which cost more than the check.)"""
    method = connection.scope.get("method", "GET")
    if method == "OPTIONS":
        return
    user = connection.scope.get("user")
    if not isinstance(user, User):
        raise NotAuthorizedException("Authentication required")
    if method not in READ_METHODS and not user.is_admin:
        raise PermissionDeniedException("This action needs the admin role")


async def reads_metrics(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """``/metrics`` (left out of the token middleware): the access token of any active user, or
    ``METRICS_TOKEN`` when it is set (a scraper's token, good for nothing else); ``OPTIONS`` needs none."""
    if connection.scope.get("method") == "OPTIONS":
        return
    token = bearer_token(connection.headers.get("Authorization", ""))
    if token is None:
        raise NotAuthorizedException("Send a token as 'Authorization: Bearer <token>'")
    settings: Settings = connection.app.state.settings
    if settings.metrics_token is not None and hmac.compare_digest(token.encode(), settings.metrics_token.encode()):
        return
    jwt_auth: JWTAuth[User] = connection.app.state.jwt_auth
    decoded = jwt_auth.token_cls.decode(token, jwt_auth.token_secret, jwt_auth.algorithm)
    if await retrieve_user(decoded, connection) is None:
        raise NotAuthorizedException("Invalid token")
