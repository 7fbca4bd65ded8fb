"""The Overview: cards, scheduler health, charts, the last executions, live updates and polling."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, Response, WebSocketRoute, expect

from tests.dashboard.conftest import ADMIN_PATH, UNLISTED, Served, create_config, log_in, make_stale
from tests.dashboard.seed import wait_for_runs
from tests.dashboard.transfer import QUIET_ROUNDS, first_load, quiet_poll_cycle

FIRST_LOAD_BUDGET = 300_000  # bytes, compressed, headers included
INSERT_RUNNING = (
    "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, trigger) "
    "VALUES ('collect_data_elsewhere', 'data_collection', $1, 'binance', 'running', 'manual') RETURNING id"
)
FINISH = (
    "UPDATE job_execution_logs SET status = 'success', finished_at = now(), duration_seconds = 1.25, "
    "records_collected = 42 WHERE id = $1"
)


@pytest.fixture
async def writer(served: Served) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection of another process (a worker, another web dyno)."""
    conn = await asyncpg.connect(served.database_url)
    yield conn
    await conn.close()


def recent(page: Page, symbol: str) -> Any:
    table = page.get_by_role("region", name="Last 10 executions")
    return table.get_by_role("row").filter(has_text=symbol)


async def test_the_overview_shows_the_day_the_scheduler_and_four_charts(page: Page) -> None:
    await log_in(page)

    cards = page.get_by_role("region", name="Last 24 hours")
    for label in ("Collection runs", "Success rate", "Average duration", "Records collected", "Runs in progress"):
        await expect(cards.get_by_text(label, exact=True)).to_be_visible()
    await expect(cards.get_by_text("of finished collection runs")).to_be_visible()
    await expect(cards).to_contain_text("the daily cleanup of old logs is not counted")
    scheduler = page.get_by_role("region", name="Scheduler")
    await expect(scheduler).to_contain_text("Alive")
    await expect(scheduler).to_contain_text("inprocess")
    for title in (
        "Success rate, last 24 hours",
        "Run duration, last 7 days",
        "Lateness of scheduled runs, last 24 hours",
        "Records collected per hour, last 24 hours",
    ):
        await expect(page.get_by_role("figure", name=title).locator("canvas")).to_have_count(1)
    await expect(page.get_by_role("link", name="All configs")).to_be_visible()
    await expect(page.get_by_role("link", name="All execution logs")).to_be_visible()


async def test_a_stale_series_shows_in_the_stale_series_card_with_its_lag(page: Page, served: Served) -> None:
    config = await create_config(served, UNLISTED[0], timeframes=["1h"], enabled=True)  # its run fails
    await wait_for_runs(served.database_url, [config["id"]])
    await make_stale(served, config["id"])

    await log_in(page)

    freshness = page.get_by_role("region", name="Freshness")
    await expect(freshness.locator(".card-alert")).to_contain_text("Stale series")
    stale = freshness.get_by_role("list", name="Stale series").get_by_role("listitem")
    await expect(stale.filter(has_text=f"{UNLISTED[0]} 1h on binance")).to_contain_text("nothing stored")
    link = stale.get_by_role("link", name=f"{UNLISTED[0]} 1h on binance")
    assert await link.get_attribute("href") == f"#/data?config={config['id']}&timeframe=1h"


async def test_a_run_written_elsewhere_appears_and_finishes_without_a_reload(
    page: Page, writer: asyncpg.Connection[Any]
) -> None:
    await log_in(page)
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    await page.evaluate("window.sameDocument = true")

    log_id = await writer.fetchval(INSERT_RUNNING, "LIVE/USDT")
    await expect(recent(page, "LIVE/USDT")).to_contain_text("running")
    await writer.execute(FINISH, log_id)

    await expect(recent(page, "LIVE/USDT")).to_contain_text("success")
    await expect(recent(page, "LIVE/USDT")).to_contain_text("42")
    assert await page.evaluate("window.sameDocument") is True


async def server_knows_the_change(served: Served, etag: str | None) -> None:
    """Wait until the server's /status tag moves on (it learns of commits through NOTIFY, within milliseconds)."""
    async with served.api(await served.token()) as client, asyncio.timeout(10):  # a safety net, not a measure
        while (await client.get(f"{ADMIN_PATH}/status", headers={"If-None-Match": etag or ""})).status_code == 304:
            await asyncio.sleep(0.01)


async def test_without_the_socket_the_page_says_so_and_polls_with_if_none_match(
    page: Page, served: Served, writer: asyncpg.Connection[Any]
) -> None:
    async def refuse(socket: WebSocketRoute) -> None:
        await socket.close(code=1011, reason="down for the test")

    await page.route_web_socket(re.compile(r"/events$"), refuse)
    await page.clock.install()
    await log_in(page)
    await expect(page.get_by_role("status").filter(has_text="Offline")).to_be_visible()

    polls: list[Response] = []
    while len(polls) < QUIET_ROUNDS and (not polls or polls[-1].status != 304):  # a new minute answers 200
        async with page.expect_response(re.compile(r"/status$")) as answer:
            await page.clock.fast_forward("00:05")
        polls.append(await answer.value)
    assert polls[-1].status == 304
    assert await polls[-1].request.header_value("if-none-match")

    await writer.fetchval(INSERT_RUNNING, "POLL/USDT")
    await server_knows_the_change(served, etag=await polls[-1].header_value("etag"))
    await page.clock.fast_forward("00:05")

    await expect(recent(page, "POLL/USDT")).to_contain_text("running")


async def test_a_first_load_stays_under_300_kb_and_a_quiet_poll_cycle_is_only_304s(page: Page) -> None:
    await page.clock.install()

    load = await first_load(page)
    cycle = await quiet_poll_cycle(page, advance=lambda: page.clock.fast_forward("00:10"))

    assert load.bytes < FIRST_LOAD_BUDGET, load
    assert cycle.statuses == [304, 304, 304], cycle
