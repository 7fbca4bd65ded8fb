"""Alerts in the Control Center: a banner on every view while one fires, and the Alerts view's lists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now
from tests.conftest import TEST_SECRET_KEY
from tests.dashboard.conftest import PHONE, VIEW_ROUTES, Served, create_config, log_in, open_view
from tests.dashboard.seed import wait_for_runs

GONE_WORKER = "worker.9:1:gone01"
# an arq worker that stopped beating ten minutes ago without shutting down: the served app has none
INSERT_GONE_WORKER = (
    "INSERT INTO scheduler_heartbeats (scheduler_id, backend, started_at, heartbeat_at, expires_at) "
    "VALUES ($1, 'arq', now() - interval '1 hour', now() - interval '10 minutes', now() - interval '9 minutes')"
)
# a run that failed on a long address, as ccxt words it
FAILED_RUN = (
    "INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, "
    "finished_at, error_type, error_message) "
    "SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, 'failed', 'manual', now(), "
    "'ExchangeNotAvailable', 'binance GET https://api.binance.com/api/v3/klines?symbol=LINKUSDT&interval=1h"
    "&startTime=1765000000000&limit=1000 503 Service Unavailable' FROM data_collection_configs WHERE id = $1"
)


@pytest.fixture
async def served_pool(served: Served) -> AsyncIterator[Pool]:
    """A pool on the served database, as another process's."""
    pool = await create_pool(served.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def served_settings(served: Served) -> Settings:
    """The served app's alert settings (the defaults)."""
    return Settings(app_env="test", database_url=served.database_url, secret_key=TEST_SECRET_KEY)


@pytest.fixture
async def gone_worker(served_pool: Pool, served_settings: Settings) -> AsyncIterator[None]:
    """A silent-scheduler alert fires for the test, and resolves after it."""
    await served_pool.execute(INSERT_GONE_WORKER, GONE_WORKER)
    await evaluate_now(served_pool, served_settings)
    yield
    await served_pool.execute("DELETE FROM scheduler_heartbeats WHERE scheduler_id = $1", GONE_WORKER)
    await evaluate_now(served_pool, served_settings)


def banner(page: Page) -> object:
    return page.get_by_role("alert").filter(has_text="firing")


async def test_a_firing_alert_shows_a_banner_on_every_view(page: Page, gone_worker: None) -> None:
    await log_in(page)

    for view in VIEW_ROUTES:
        await open_view(page, view)
        await expect(banner(page)).to_have_text("1 alert firing: Scheduler silent. See the alerts")


async def test_the_banners_link_opens_the_alerts_firing_now(page: Page, gone_worker: None) -> None:
    await log_in(page, view="Data")

    await banner(page).get_by_role("link", name="See the alerts").click()

    await expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    row = page.get_by_role("region", name="Alerts firing now").get_by_role("row").filter(has_text=GONE_WORKER)
    await expect(row).to_contain_text("Scheduler silent")
    await expect(row).to_contain_text("did not shut down; 1 other scheduler alive")
    await expect(row).to_contain_text("not sent")


async def test_a_resolved_alert_leaves_the_banner_and_is_listed_as_resolved(
    page: Page, served_pool: Pool, served_settings: Settings
) -> None:
    await served_pool.execute(INSERT_GONE_WORKER, "worker.9:2:gone02")
    await evaluate_now(served_pool, served_settings)
    await log_in(page, view="Alerts")
    await expect(banner(page)).to_be_visible()

    await served_pool.execute("DELETE FROM scheduler_heartbeats WHERE scheduler_id = 'worker.9:2:gone02'")
    await evaluate_now(served_pool, served_settings)
    await open_view(page, "Overview")
    await open_view(page, "Alerts")

    await expect(banner(page)).to_be_hidden()
    resolved = page.get_by_role("region", name="Alerts resolved in the last 24 hours")
    await expect(resolved.get_by_role("row").filter(has_text="worker.9:2:gone02")).to_contain_text("Scheduler silent")
    await expect(page.get_by_role("region", name="Alerts firing now")).to_contain_text("Nothing is firing.")


async def test_the_alerts_view_says_where_notifications_go(page: Page) -> None:
    await log_in(page, view="Alerts")

    notifications = page.get_by_role("region", name="Notifications")
    await expect(notifications).to_contain_text("not set: alerts show here only")
    await expect(notifications).to_contain_text("Waiting to be sent0 messages")


async def test_an_alert_that_fires_while_a_view_is_open_shows_its_banner_without_a_reload(
    page: Page, served_pool: Pool, served_settings: Settings
) -> None:
    await log_in(page, view="Configs")
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    await expect(banner(page)).to_be_hidden()

    await served_pool.execute(INSERT_GONE_WORKER, "worker.9:3:gone03")
    await evaluate_now(served_pool, served_settings)
    try:
        await expect(banner(page)).to_have_text("1 alert firing: Scheduler silent. See the alerts")
    finally:
        await served_pool.execute("DELETE FROM scheduler_heartbeats WHERE scheduler_id = 'worker.9:3:gone03'")
        await evaluate_now(served_pool, served_settings)


async def test_an_alert_quoting_a_long_url_fits_a_375_px_screen(
    page: Page, served: Served, served_pool: Pool, served_settings: Settings
) -> None:
    served.fake.delisted.add("LINK/USDT")  # its runs fail for real
    config = await create_config(served, "LINK/USDT", enabled=True)
    try:
        await wait_for_runs(served.database_url, [config["id"]])
        for _ in range(3):
            await served_pool.execute(FAILED_RUN, config["id"])
        await evaluate_now(served_pool, served_settings)
        await page.set_viewport_size(PHONE)
        await log_in(page, view="Alerts")
        await expect(page.get_by_role("region", name="Alerts firing now")).to_contain_text("LINK/USDT")

        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        served.fake.delisted.discard("LINK/USDT")
        await served_pool.execute("DELETE FROM data_collection_configs WHERE id = $1", config["id"])
        await evaluate_now(served_pool, served_settings)
