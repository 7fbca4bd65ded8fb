"""Role checks: viewers read, admins read and write."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from backend.auth.schemas import User

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
