"""The Control Center while someone guesses its admin's password from many addresses: the browser
that logged in before keeps working and logs in again; a browser that never did is told to wait.

The app here trusts ``X-Forwarded-For`` from 127.0.0.1 (as behind Heroku's router), so that the
guesses come from ten addresses while the browser comes from its own; it serves the folder's
database with an admin of its own, whose lockout touches no other test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, expect

from backend.app import create_app
from backend.auth import repository as users
from backend.settings import Settings
from tests.auth.conftest import new_addresses
from tests.conftest import PASSWORD, PASSWORD_HASH, TEST_SECRET_KEY, serving
from tests.dashboard.conftest import DESKTOP, Served, log_in, open_view

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def behind_proxy(served: Served) -> AsyncIterator[str]:
    """The app on the folder's database, behind a trusted proxy; its base URL."""
    settings = Settings(
        app_env="test", database_url=served.database_url, secret_key=TEST_SECRET_KEY, scheduler_backend="off"
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    async with serving(config) as url:
        yield url


@pytest.fixture
async def admin(served: Served) -> str:
    email = f"guarded-{uuid.uuid4().hex[:8]}@example.com"
    conn = await asyncpg.connect(served.database_url)
    try:
        await users.create_user(conn, email=email, password_hash=PASSWORD_HASH, role="admin")
    finally:
        await conn.close()
    return email


async def _guess_from_ten_addresses(base_url: str, email: str) -> list[int]:
    """Five wrong passwords from each of ten addresses: enough to lock the email for unknown devices."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        return [
            (
                await http.post(LOGIN, json={"email": email, "password": "guess"}, headers={"X-Forwarded-For": address})
            ).status_code
            for address in new_addresses(10)
            for _ in range(5)
        ]


async def test_the_control_center_keeps_working_through_a_guessing_attack_and_logs_in_again(
    browser: Browser, behind_proxy: str, admin: str
) -> None:
    context = await browser.new_context(base_url=behind_proxy, viewport=DESKTOP)
    try:
        page = await context.new_page()
        await log_in(page, admin)

        assert set(await _guess_from_ten_addresses(behind_proxy, admin)) == {401}

        await open_view(page, "Configs")
        await page.get_by_role("button", name="Log out").click()
        await log_in(page, admin)
        await expect(page.get_by_text(f"{admin} (admin)")).to_be_visible()
    finally:
        await context.close()


async def test_a_browser_that_never_logged_in_is_told_to_wait_during_the_attack(
    browser: Browser, behind_proxy: str, admin: str
) -> None:
    assert set(await _guess_from_ten_addresses(behind_proxy, admin)) == {401}
    context = await browser.new_context(base_url=behind_proxy, viewport=DESKTOP)
    try:
        page = await context.new_page()
        await page.goto("/")
        await page.get_by_label("Email").fill(admin)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()

        await expect(page.get_by_role("alert")).to_have_text(
            re.compile(r"^Too many failed logins, try again later \(retry in \d+ s\)$")
        )
    finally:
        await context.close()
