"""What the page moves over the network, as Chromium counts it (compressed bodies plus headers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from playwright.async_api import Page, Request

from tests.conftest import ADMIN_EMAIL, PASSWORD
from tests.dashboard.conftest import log_in

# what the overview asks every 10 s to keep its scheduler health current
POLLED_PATHS = ("/status", "/stats/timeseries?hours=24", "/stats/timeseries?hours=168")
QUIET_ROUNDS = 5


@dataclass
class Transfer:
    requests: int = 0
    bytes: int = 0
    statuses: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.requests} requests, {self.bytes / 1000:.1f} kB"


async def _add(transfer: Transfer, request: Request) -> None:
    response = await request.response()
    sizes = await request.sizes()
    transfer.requests += 1
    transfer.bytes += sizes["requestHeadersSize"] + sizes["requestBodySize"]
    transfer.bytes += sizes["responseHeadersSize"] + sizes["responseBodySize"]
    transfer.statuses.append(response.status if response else 0)


async def first_load(page: Page, email: str = ADMIN_EMAIL, password: str = PASSWORD) -> Transfer:
    """Open the dashboard with an empty cache, log in, and wait until the overview has drawn its charts."""
    finished: list[Request] = []

    def record(request: Request) -> None:
        finished.append(request)

    page.on("requestfinished", record)
    await log_in(page, email, password)
    await page.locator(".chart-plot canvas").nth(3).wait_for()
    await page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", record)
    transfer = Transfer()
    for request in finished:
        await _add(transfer, request)
    return transfer


async def quiet_poll_cycle(page: Page, advance: Callable[[], Awaitable[None]] | None = None) -> Transfer:
    """The first of the overview's rounds of conditional requests that finds nothing changed.

    Tags include the minute (answers cover "the last 24 hours" from a whole minute), so the first
    round of a new minute answers 200s even when no data changed, and so does a round after a
    change; at most QUIET_ROUNDS rounds are taken. ``advance`` moves the page's clock to the next
    round (tests install a fake clock).
    """
    for _ in range(QUIET_ROUNDS):
        cycle = await _next_poll_cycle(page, advance)
        if set(cycle.statuses) == {304}:
            break
    return cycle


async def _next_poll_cycle(page: Page, advance: Callable[[], Awaitable[None]] | None) -> Transfer:
    seen: list[Request] = []

    def record(request: Request) -> None:
        seen.append(request)

    def complete(_: Request | None = None) -> bool:
        return {_polled(request.url) for request in seen} >= set(POLLED_PATHS)

    page.on("requestfinished", record)  # registered first: called before the wait's predicate
    try:
        async with page.expect_event("requestfinished", predicate=complete, timeout=30_000):
            if advance is not None:
                await advance()
    finally:
        page.remove_listener("requestfinished", record)
    transfer = Transfer()
    for request in seen:
        await _add(transfer, request)
    return transfer


def _polled(url: str) -> str | None:
    return next((path for path in POLLED_PATHS if path in url), None)
