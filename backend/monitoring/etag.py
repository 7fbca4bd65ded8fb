"""Cheap polling: ETags from the data's version, 304 without running the aggregate, answers kept per tag.

A polled answer depends on the route and its parameters, on the data (``data_versions``, bumped
by triggers in the writing transaction), and on the clock through its window: windows start on
a whole minute, so the minute is part of the tag too. Same tag, same answer: a matching
``If-None-Match`` gets a 304 after one primary-key read, and a client without it gets the
answer computed for that tag by an earlier request of this process.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Response

from backend.db.pool import Connection, Pool

T = TypeVar("T")

READ_DATA_VERSION = """
SELECT coalesce(string_agg(source || ':' || version || ':' || changed_at, ';' ORDER BY source), '')
FROM data_versions
"""
CACHE_CONTROL = "no-cache"
CACHED_ANSWERS = 256


async def read_data_version(db: Pool | Connection) -> str:
    """The version of everything monitoring answers are computed from; changes with every change."""
    version: str = await db.fetchval(READ_DATA_VERSION)
    return version


def current_minute() -> datetime:
    """Now, truncated to the minute: polled windows start and end on whole minutes."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def make_etag(*parts: object) -> str:
    """A weak tag: equal tags mean the same answer (a copy may be up to a minute old in its ages)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return f'W/"{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """``If-None-Match`` holds ``etag`` (weak comparison, as RFC 9110 asks for this header) or ``*``."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def polled_headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": CACHE_CONTROL}


def not_modified(etag: str) -> Response[Any]:
    return Response(content=None, status_code=304, headers=polled_headers(etag))


class AnswerCache:
    """The latest answers by tag, least recently used dropped first; one per process."""

    def __init__(self, max_entries: int = CACHED_ANSWERS) -> None:
        self._max_entries = max_entries
        self._answers: OrderedDict[str, Any] = OrderedDict()

    async def get_or_compute(self, etag: str, compute: Callable[[], Awaitable[T]]) -> T:
        if etag in self._answers:
            self._answers.move_to_end(etag)
            answer: T = self._answers[etag]
            return answer
        answer = await compute()
        self._answers[etag] = answer
        if len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)
        return answer
