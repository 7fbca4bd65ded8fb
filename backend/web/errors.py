"""The one error shape, and every exception mapped to it once.

Every error answer is an :class:`Error`: ``status_code``, ``detail`` and, for validation errors,
``extra`` entries naming the field. Client errors (4xx) are logged at INFO in one line (method,
path, status, detail); a 503 (a service is down) in one WARNING line, except a database outage:
one INFO line per request, and one WARNING for the whole process while it lasts
(``backend.db.outage``); only other 5xx carry a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from backend.db.outage import DATABASE_OUTAGE, OUTAGE_ERRORS
from backend.errors import ConflictError, NotFoundError, UnavailableError

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The database is unavailable, try again shortly"


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """One problem with the request: what is wrong, with which field (``key``) and where (``source``:
    ``body``, ``query``, ``path`` or ``header``)."""

    message: str
    key: str | None = None
    source: str | None = None


class Error(msgspec.Struct, omit_defaults=True):
    """Every error answer of the API."""

    status_code: int
    detail: str
    extra: list[ErrorDetail] | msgspec.UnsetType = msgspec.UNSET


def error_response(
    status_code: int,
    detail: str,
    extra: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Error]:
    return Response(
        Error(status_code=status_code, detail=detail, extra=extra if extra else msgspec.UNSET),
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _where(request: Request[Any, Any, Any]) -> str:
    return f"{request.method} {request.scope.get('path', '')}"  # never the query: it may hold a token


def _log_client_error(request: Request[Any, Any, Any], status_code: int, detail: str) -> None:
    logger.info("%s -> %d %s", _where(request), status_code, detail)


def _text(value: Any) -> str | None:
    """``ParamType.QUERY`` -> ``query``; None stays None."""
    if value is None:
        return None
    return str(value.value if isinstance(value, Enum) else value)


def _details(extra: Any) -> list[ErrorDetail]:
    """Litestar's ``extra`` (a list of ``{message, key, source}`` or a mapping) as details."""
    if isinstance(extra, dict):
        return [ErrorDetail(message=str(value), key=str(key)) for key, value in extra.items()]
    if not isinstance(extra, list):
        return []
    details = []
    for item in extra:
        if isinstance(item, dict):
            details.append(
                ErrorDetail(
                    message=str(item.get("message", "")),
                    key=_text(item.get("key")),
                    source=_text(item.get("source")),
                )
            )
        else:
            details.append(ErrorDetail(message=str(item)))
    return details


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Error]:
    """Litestar's own exceptions (validation, auth, not found, method not allowed, 429, ...)."""
    if exc.status_code == 503:
        logger.warning("%s -> 503 %s", _where(request), exc.detail)
    elif exc.status_code >= 500:
        logger.error("%s -> %d %s", _where(request), exc.status_code, exc.detail, exc_info=exc)
    else:
        _log_client_error(request, exc.status_code, exc.detail)
    return error_response(exc.status_code, exc.detail, _details(exc.extra), dict(exc.headers or {}))


def _client_error(
    status_code: int, describe: Callable[[Any], str]
) -> Callable[[Request[Any, Any, Any], Any], Response[Error]]:
    def handle(request: Request[Any, Any, Any], exc: Any) -> Response[Error]:
        detail = describe(exc)
        _log_client_error(request, status_code, detail)
        return error_response(status_code, detail)

    return handle


def unavailable(request: Request[Any, Any, Any], exc: UnavailableError) -> Response[Error]:
    logger.warning("%s -> 503 %s", _where(request), exc)
    return error_response(503, str(exc))


def database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Error]:
    """The outage is a WARNING once for the whole process (``DATABASE_OUTAGE``); each request, a line at INFO."""
    DATABASE_OUTAGE.unreachable(exc)
    logger.info("%s -> 503 database unavailable (%s)", _where(request), type(exc).__name__)
    return error_response(503, DATABASE_UNAVAILABLE)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Error]:
    logger.error("%s -> 500 %s", _where(request), type(exc).__name__, exc_info=exc)
    return error_response(500, "Internal Server Error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_error,
    NotFoundError: _client_error(404, str),
    ConflictError: _client_error(409, str),
    UnavailableError: unavailable,
    asyncpg.UniqueViolationError: _client_error(
        409, lambda exc: f"Already exists: {exc.detail or 'a row with the same key already exists'}"
    ),
    asyncpg.CheckViolationError: _client_error(400, lambda exc: f"Invalid value: violates {exc.constraint_name}"),
    # a value the request parsing let through but PostgreSQL refuses (out of range, not representable)
    asyncpg.DataError: _client_error(400, lambda _: "Invalid value: out of range or not representable"),
    **dict.fromkeys(OUTAGE_ERRORS, database_down),  # starting, shutting down, full or unreachable
    Exception: internal_error,
}
"""Registered on the app; the most specific class in an exception's MRO wins."""
