"""Cheap polling: ETags from the data's version, 304 without running the aggregate, answers kept per tag.

A polled answer depends on the route and its parameters, on the data (``data_versions``, bumped
by triggers in the writing transaction and announced on channel ``data_versions`` at commit), and
on the clock through its window: windows start on a whole minute, so the minute is part of the
tag too. Same tag, same answer: a matching ``If-None-Match`` gets a 304 without any query, and a
client without it gets the answer computed for that tag by an earlier request of this process.

Each process follows the version through its LISTEN connection (:class:`DataVersions`); while that
connection is down, the version is read from the table instead. A change becomes visible to a
process when its notification arrives (milliseconds after the commit); an answer computed in
between carries the older tag and is replaced at the next poll after it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Request, Response

from backend.db.pool import Connection, Pool

T = TypeVar("T")

READ_DATA_VERSIONS = "SELECT data_version_token(v) AS token FROM data_versions AS v"
CACHE_CONTROL = "no-cache"
CACHED_ANSWERS = 32  # a few dashboards poll a few parameter sets; the minute in the tag retires old ones


async def read_data_version_tokens(db: Pool | Connection) -> list[str]:
    """One ``source:version:changed_at`` token per versioned table, as NOTIFY sends them."""
    return [row["token"] for row in await db.fetch(READ_DATA_VERSIONS)]


class DataVersions:
    """The data version as this process's LISTEN connection reports it; ``known`` while it listens."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self.known = False

    def reset(self, tokens: list[str]) -> None:
        """Start from the tokens read after LISTEN began (notifications then only move them forward)."""
        self._tokens = {token.partition(":")[0]: token for token in tokens}
        self.known = True

    def apply(self, token: str) -> None:
        """A notification: the latest version of its table (PostgreSQL delivers them in commit order)."""
        self._tokens[token.partition(":")[0]] = token

    def forget(self) -> None:
        self.known = False

    def current(self) -> str:
        return combine_tokens(self._tokens.values())


def combine_tokens(tokens: Iterable[str]) -> str:
    return ";".join(sorted(tokens))


async def current_data_version(request: Request[Any, Any, Any], pool: Pool) -> str:
    """The version of everything monitoring answers are computed from; changes with every change."""
    versions: DataVersions = request.app.state.data_versions
    if versions.known:
        return versions.current()
    return combine_tokens(await read_data_version_tokens(pool))


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
    """The latest answers by tag, least recently used dropped first; one per process.

    An answer is computed once per tag: requests that arrive while it is being computed (every
    dashboard polls right after a change) wait for that computation instead of running their own.
    A computation that fails is forgotten, so the next request tries again.
    """

    def __init__(self, max_entries: int = CACHED_ANSWERS) -> None:
        self._max_entries = max_entries
        self._answers: OrderedDict[str, asyncio.Future[Any]] = OrderedDict()

    async def get_or_compute(self, etag: str, compute: Callable[[], Awaitable[T]]) -> T:
        answer = self._answers.get(etag)
        if answer is None:
            answer = self._answers[etag] = asyncio.ensure_future(compute())
            if len(self._answers) > self._max_entries:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(etag)
        try:
            result: T = await asyncio.shield(answer)  # one client leaving does not cancel it for the others
        except Exception:
            if self._answers.get(etag) is answer:
                del self._answers[etag]
            raise
        return result
