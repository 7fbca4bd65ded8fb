"""One log format for the app, uvicorn and Litestar: text for people, or one JSON object per line.

Every line carries the request id (``request_id``) while a request is served and the run id
(``run_id``) while a collection run is performed. Access tokens sent as ``?token=`` never reach a
log: every message is redacted before it is written.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from backend.settings import LogFormat

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
RUN_ID: ContextVar[int | None] = ContextVar("run_id", default=None)
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']*")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# uvicorn's and Litestar's loggers: no handlers of their own, everything goes through the root's
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "arq")

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")


def redact(text: str) -> str:
    return TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class ContextFilter(logging.Filter):
    """Stamps each record with the request id and run id of the context that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        if not hasattr(record, "run_id"):
            record.run_id = RUN_ID.get()
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    names = ("request_id", "run_id")
    return {name: value for name in names if (value := getattr(record, name, None)) is not None}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=… run_id=…]``, tokens redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={value}" for key, value in _context(record).items())
        return redact(f"{text} [{context}]" if context else text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the request and run
    ids when there are some, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(*, level: str, log_format: LogFormat) -> None:
    """Send every logger's records to one stderr handler in the chosen format."""
    formatter = "json" if log_format == "json" else "text"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"text": {"()": TextFormatter}, "json": {"()": JsonFormatter}},
            "filters": {"context": {"()": ContextFilter}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["context"]}},
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {name: {"handlers": [], "propagate": True} for name in SERVER_LOGGERS},
        }
    )


def logs_run_id(
    method: Callable[Concatenate[S, int, P], Awaitable[T]],
) -> Callable[Concatenate[S, int, P], Awaitable[T]]:
    """Decorates ``async def method(self, run_id, ...)``: its log lines carry ``run_id``."""

    @functools.wraps(method)
    async def with_run_id(self: S, run_id: int, /, *args: P.args, **kwargs: P.kwargs) -> T:
        token = RUN_ID.set(run_id)
        try:
            return await method(self, run_id, *args, **kwargs)
        finally:
            RUN_ID.reset(token)

    return with_run_id
