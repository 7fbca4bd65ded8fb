"""The Control Center in a real browser: Debian's Chromium driven by Playwright, against the app
served by uvicorn (in-process scheduler, real collector) on a database of its own, with ccxt
pointed at the fake Binance.

One database, one server, one fake exchange and one browser serve every test of this folder;
each test gets a fresh browser context (no stored session) and works on symbols of its own, so
tests do not depend on each other. A failing test leaves a screenshot in ``.data/dashboard-failures/``.
Without Chromium the tests are skipped with the reason, except with CI=true, where that fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

from backend.app import create_app
from backend.auth import repository as users
from backend.settings import Settings
from tests.bench.throwaway import throwaway_database
from tests.collection.fake_binance import FakeBinance, running_fake_binance
from tests.conftest import ADMIN_EMAIL, PASSWORD, TEST_SECRET_KEY, VIEWER_EMAIL, password_hash, serving

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / ".data" / "dashboard-failures"
ADMIN_PATH = "/api/v1/admin/data-collection"
# the fake's markets; each test uses symbols of its own
SYMBOLS = [
    f"{base}/USDT"
    for base in (
        "BTC",
        "ETH",
        "SOL",
        "XRP",
        "ADA",
        "DOT",
        "LTC",
        "BNB",
        "TRX",
        "AVAX",
        "LINK",
        "NEAR",
        "ATOM",
        "UNI",
        "APT",
        "ARB",
        "OP",
        "SUI",
        "TIA",
        "INJ",
    )
]
# a symbol the fake does not list: every run of it fails and it never stores a candle
UNLISTED = ("DOGE/USDT", "PEPE/USDT")
BACKDATE_ENABLING = "UPDATE data_collection_configs SET schedule_anchor_at = now() - interval '1 day' WHERE id = $1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
# console messages that are the network's, not the page's: HTTP errors the page handles and shows,
# and the socket of a test that takes the connection down on purpose
EXPECTED_CONSOLE = ("Failed to load resource", "WebSocket connection to")


@dataclass
class Served:
    url: str
    database_url: str
    fake: FakeBinance
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def token(self, email: str = ADMIN_EMAIL) -> str:
        """A token of the user, logged in once per run (tokens last an hour)."""
        if email not in self.tokens:
            async with self.api() as client:
                response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            response.raise_for_status()
            self.tokens[email] = response.json()["access_token"]
        return self.tokens[email]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[Any]:
    """Keep each phase's report on the test, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: required in CI")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="package")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One headless Chromium (Playwright gives it a fresh temporary profile) for every test."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="package")
async def served(chromium: str) -> AsyncIterator[Served]:
    """The app as ``python -m backend serve`` runs it, on a migrated database with two users."""
    async with throwaway_database("altar_dashboard") as database_url, running_fake_binance(SYMBOLS) as fake:
        conn = await asyncpg.connect(database_url)
        try:
            for email, role in ((ADMIN_EMAIL, "admin"), (VIEWER_EMAIL, "viewer")):
                await users.create_user(conn, email=email, password_hash=await password_hash(), role=role)
        finally:
            await conn.close()
        settings = Settings(
            app_env="test",
            database_url=database_url,
            secret_key=TEST_SECRET_KEY,
            scheduler_backend="inprocess",
            scheduler_heartbeat_seconds=2,
            exchange_overrides=fake.exchange_overrides(),
            exchange_retry_base_ms=10,
            exchange_max_retries=1,
            run_heartbeat_seconds=1,
        )
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        async with serving(config) as url:
            yield Served(url=url, database_url=database_url, fake=fake)


@pytest.fixture
async def context(browser: Browser, served: Served) -> AsyncIterator[BrowserContext]:
    browser_context = await browser.new_context(base_url=served.url, viewport=DESKTOP, accept_downloads=True)
    yield browser_context
    await browser_context.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A tab of a fresh context. Uncaught errors and CSP violations in it fail the test."""
    tab = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_CONSOLE):
            problems.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        shot = FAILURES / f"{request.node.name}.png"
        await tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
    assert not problems, f"the page logged errors: {problems}"


VIEW_ROUTES = {
    "Overview": "overview",
    "Configs": "configs",
    "Execution logs": "logs",
    "Data": "data",
    "Alerts": "alerts",
}


async def log_in(
    page: Page, email: str = ADMIN_EMAIL, password: str = PASSWORD, *, view: str = "Overview", query: str = ""
) -> None:
    """Open the dashboard at `view` (with `query`) and log in through the form; returns once that view is shown."""
    await page.goto(f"/#/{VIEW_ROUTES[view]}" + (f"?{query}" if query else ""))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name=view, level=1)).to_be_visible()


async def open_view(page: Page, name: str) -> None:
    """Follow a navigation link (Overview, Configs, Execution logs, Data, Alerts) and wait for its heading."""
    await page.get_by_role("navigation", name="Views").get_by_role("link", name=name).click()
    await expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


async def make_stale(served: Served, config_id: int) -> None:
    """As if the config had been enabled a day ago (its series were given a day to catch up), with
    the answers' data version moved on as a write that shows would."""
    conn = await asyncpg.connect(served.database_url)
    try:
        await conn.execute(BACKDATE_ENABLING, config_id)
        await conn.execute("SELECT bump_data_version('data_collection_configs')")
    finally:
        await conn.close()


async def create_config(served: Served, symbol: str, **fields: Any) -> dict[str, Any]:
    """A config created through the API, as another admin would (disabled unless asked)."""
    body = {"symbol": symbol, "timeframes": ["1h"], "interval_minutes": 60, "enabled": False, **fields}
    async with served.api(await served.token()) as client:
        response = await client.post(f"{ADMIN_PATH}/configs", json=body)
    response.raise_for_status()
    config: dict[str, Any] = response.json()
    return config
