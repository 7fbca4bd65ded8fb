"""``make screenshots``: every view of the Control Center, on a desktop and 375 px wide, into
``docs/screenshots/``, and the bytes a first load and a quiet poll cycle transfer.

Not collected by ``make test`` (the file name does not start with ``test_``); the Makefile runs it
by path. Four configs collect for real from the fake Binance (a few of its candles are missing,
so the data view has gaps to show, and it corrects two stored ones afterwards); a week of run
history is written as the scheduler would have.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Browser, Locator, Page, expect

from backend.db.pool import create_pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now
from tests.conftest import TEST_SECRET_KEY
from tests.dashboard.conftest import DESKTOP, PHONE, ROOT, Served, create_config, log_in
from tests.dashboard.failed_runs import insert_dns_failure
from tests.dashboard.seed import correct_stored_candles, fetch_one, seed_history, wait_for_runs
from tests.dashboard.transfer import first_load, quiet_poll_cycle

OUTPUT = ROOT / "docs" / "screenshots"
LIVE_SAMPLES = 5
INSERT_RUNNING = (
    "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, trigger) "
    "VALUES ('collect_data_elsewhere', 'data_collection', $1, 'binance', 'running', 'manual')"
)
DESKTOP_MAX_HEIGHT = 1500
FAILED_RUN = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, finished_at,
                                duration_seconds, records_collected, error_type, error_message, error_cause)
SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, 'failed', 'manual', now(), 2.41, 0,
       'ExchangeNotAvailable',
       string_agg(timeframe || ': binance GET https://api.binance.com/api/v3/klines?interval=' || timeframe
                  || '&limit=1000&symbol=' || replace(symbol, '/', '') || ' 503 Service Unavailable '
                  || '<html><head><title>503 Service Temporarily Unavailable</title></head></html>', '; '),
       'binance is unavailable (HTTP 503)'
FROM data_collection_configs, unnest(timeframes) AS timeframe
WHERE id = $1
GROUP BY id
"""
BINANCE_PAUSE = """
INSERT INTO exchange_pauses (exchange, process, state, since, until, reason)
VALUES ('binance', 'web.1:4:3fa9c1', 'paused', now() - interval '14 minutes', now() + interval '1 minute',
        '429 Too Many Requests (Retry-After: 120)')
"""


def _missing_open_times() -> set[int]:
    """Three hours two days ago and one five days ago: gaps in every series of the fake."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    missing = [hour - timedelta(days=2, hours=k) for k in range(3)] + [hour - timedelta(days=5, hours=7)]
    return {int(moment.timestamp() * 1000) for moment in missing}


async def _seed(served: Served) -> dict[str, Any]:
    served.fake.missing_ms = _missing_open_times()
    btc = await create_config(
        served,
        "BTC/USDT",
        timeframes=["1m", "1h"],
        interval_minutes=60,
        enabled=True,
        description="Majors: minute bars for the desk",
    )
    eth = await create_config(served, "ETH/USDT", timeframes=["15m", "1h", "1d"], interval_minutes=30, enabled=True)
    sol = await create_config(served, "SOL/USDT", timeframes=["1h", "4h"], interval_minutes=120, enabled=True)
    xrp = await create_config(
        served,
        "XRP/USDT",
        timeframes=["1h"],
        interval_minutes=60,
        enabled=False,
        description="Paused until the listing review",
    )
    await wait_for_runs(served.database_url, [btc["id"], eth["id"], sol["id"]])
    await correct_stored_candles(served, "ETH/USDT", "1h", 2)
    await seed_history(served.database_url, [btc["id"], eth["id"], sol["id"], xrp["id"]])
    real_run = "SELECT max(id) FROM job_execution_logs WHERE config_id = $1 AND metadata ? 'by_timeframe'"
    run_id = await fetch_one(served.database_url, real_run, eth["id"])
    failed_run_id = await insert_dns_failure(served.database_url, eth["id"], eth["timeframes"])  # the latest run
    return {"eth": eth, "sol": sol, "run_id": run_id, "failed_run_id": failed_run_id}


async def _seed_alerts(served: Served, sol_id: int) -> None:
    """A bad hour, after the other pictures: SOL/USDT's last three runs failed (firing), and binance
    paused every request for 14 minutes (resolved)."""
    pool = await create_pool(served.database_url, min_size=1, max_size=1)
    settings = Settings(app_env="test", database_url=served.database_url, secret_key=TEST_SECRET_KEY)
    try:
        for _ in range(3):
            await pool.execute(FAILED_RUN, sol_id)
        await pool.execute(BINANCE_PAUSE)
        await evaluate_now(pool, settings)
        await pool.execute("UPDATE exchange_pauses SET until = now() - interval '1 second'")
        await evaluate_now(pool, settings)
        await pool.execute("UPDATE alerts SET firing_since = firing_since - interval '4 minutes'")  # an hour's pace
    finally:
        await pool.close()


async def _live_delay(page: Page, served: Served, n: int) -> float:
    """Seconds from the commit of a run written by another connection to its row on the page."""
    conn = await asyncpg.connect(served.database_url)
    try:
        started = time.monotonic()
        await conn.execute(INSERT_RUNNING, f"LIVE{n}/USDT")
        await page.get_by_role("region", name="Last 10 executions").get_by_text(f"LIVE{n}/USDT").wait_for()
        return time.monotonic() - started
    finally:
        await conn.close()


async def _shoot(page: Page, name: str, ready: Locator, *, phone: bool, top: Locator | None = None) -> None:
    """The page once ``ready`` shows; on the phone, the screen's worth from ``top`` (else the page's top)."""
    await ready.wait_for()
    await page.wait_for_load_state("networkidle")
    await page.mouse.move(0, 0)  # no hover effects or crosshair in the picture
    path = OUTPUT / f"{name}-{'phone' if phone else 'desktop'}.png"
    if phone:
        if top is not None:
            await top.evaluate("node => node.scrollIntoView({block: 'start'})")
        await page.screenshot(path=str(path))
        return
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": 0, "width": DESKTOP["width"], "height": min(height, DESKTOP_MAX_HEIGHT)},
    )


async def test_screenshots_of_every_view(browser: Browser, served: Served) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    seeded = await _seed(served)

    context = await browser.new_context(base_url=served.url, viewport=DESKTOP)
    page = await context.new_page()
    load = await first_load(page)
    cycle = await quiet_poll_cycle(page)
    await context.close()
    print(f"\nfirst load (empty cache, login, overview drawn): {load}")
    print(f"quiet poll cycle: {cycle}, statuses {sorted(set(cycle.statuses))}")

    for viewport, phone in ((DESKTOP, False), (PHONE, True)):
        context = await browser.new_context(base_url=served.url, viewport=viewport)
        page = await context.new_page()
        await page.goto("/")
        await expect(page.get_by_role("button", name="Log in")).to_be_visible()
        await _shoot(page, "login", page.get_by_label("Email"), phone=phone)
        await log_in(page)
        eth = seeded["eth"]["id"]
        views = [
            ("overview", "#/overview", page.locator(".chart-plot canvas").nth(3)),
            ("configs", "#/configs", page.get_by_role("cell", name="XRP/USDT").first),
            ("logs", f"#/logs?config_id={eth}", page.get_by_text("runs · page 1")),
            ("run", f"#/logs/{seeded['run_id']}", page.get_by_role("heading", name="Per timeframe")),
            ("data", f"#/data?config={eth}&timeframe=1h", page.get_by_text("stored candles loaded")),
        ]
        for name, address, ready in views:
            await page.goto(f"/{address}")
            await _shoot(page, name, ready, phone=phone)
        await page.goto(f"/#/logs/{seeded['failed_run_id']}")  # on the phone, from its error down
        error = page.get_by_role("region", name="Error")
        await _shoot(page, "failed-run", error.get_by_role("heading", name="Full error"), phone=phone, top=error)
        await page.goto("/#/configs")
        await page.get_by_role("button", name="New config").click()
        await page.get_by_label("Symbol").fill("DOGEUSDT")
        await page.get_by_role("button", name="Create").click()
        await _shoot(page, "config-form", page.locator(".field-error:visible"), phone=phone)
        await context.close()
    await _seed_alerts(served, seeded["sol"]["id"])
    for viewport, phone in ((DESKTOP, False), (PHONE, True)):
        context = await browser.new_context(base_url=served.url, viewport=viewport)
        page = await context.new_page()
        await log_in(page, view="Alerts")
        await _shoot(page, "alerts", page.get_by_role("cell", name="Exchange paused"), phone=phone)
        await context.close()
    print(f"screenshots in {Path(OUTPUT).relative_to(ROOT)}/")

    page = await browser.new_page(base_url=served.url, viewport=DESKTOP)  # after the pictures: its runs stay open
    await log_in(page)
    delays = [await _live_delay(page, served, n) for n in range(LIVE_SAMPLES)]
    await page.close()
    print(f"a run committed elsewhere shows on the overview after {statistics.median(delays) * 1000:.0f} ms (median)")
