"""Logging in and out, expired sessions, the token kept out of URLs, and the keyboard alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
from playwright.async_api import BrowserContext, Page, WebSocket, expect

from tests.conftest import ADMIN_EMAIL, PASSWORD, TEST_SECRET_KEY
from tests.dashboard.conftest import Served, log_in, open_view
from tests.dashboard.seed import fetch_one

EXPIRED = "Your session has expired. Log in again."


async def test_logging_in_shows_the_overview_and_who_is_logged_in(page: Page) -> None:
    await log_in(page)

    await expect(page.get_by_text(f"{ADMIN_EMAIL} (admin)")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


async def test_a_wrong_password_shows_the_apis_message(page: Page) -> None:
    await page.goto("/")
    await page.get_by_label("Email").fill(ADMIN_EMAIL)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()

    await expect(page.get_by_role("alert")).to_have_text("Incorrect email or password")
    await expect(page.get_by_role("button", name="Log in")).to_be_enabled()


async def test_an_empty_or_partial_email_is_said_in_words_next_to_the_field(page: Page) -> None:
    logins: list[str] = []
    page.on("request", lambda request: logins.append(request.url) if "/auth/login" in request.url else None)
    await page.goto("/")
    email = page.get_by_label("Email")
    await page.get_by_label("Password").fill(PASSWORD)

    await page.get_by_role("button", name="Log in").click()

    described_by = await email.get_attribute("aria-describedby")
    assert described_by
    error = page.locator(f"#{described_by.split()[-1]}")
    await expect(error).to_have_text("Enter your email address.")
    await expect(email).to_be_focused()
    await email.fill("ad")
    await page.get_by_role("button", name="Log in").click()
    await expect(error).to_have_text("Enter a whole email address, like name@example.com.")
    assert logins == []


async def test_logging_out_returns_to_the_login_form_with_a_message(page: Page) -> None:
    await log_in(page)

    await page.get_by_role("button", name="Log out").click()

    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await expect(page.get_by_text("You are logged out.")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await page.reload()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()


async def test_a_token_the_server_refuses_sends_the_user_back_to_login_with_a_message(
    context: BrowserContext, page: Page, served: Served
) -> None:
    """The server says 401 (the token expired there) while the page still holds it."""
    admin_id = await fetch_one(served.database_url, "SELECT id FROM users WHERE email = $1", ADMIN_EMAIL)
    past = datetime.now(UTC) - timedelta(hours=2)
    token = jwt.encode({"sub": str(admin_id), "iat": past, "exp": past + timedelta(hours=1)}, TEST_SECRET_KEY)
    session = {"token": token, "user": {"email": ADMIN_EMAIL, "role": "admin"}, "expiresAt": 4102444800000}
    await context.add_init_script(f"sessionStorage.setItem('altar.session', {json.dumps(json.dumps(session))})")

    await page.goto("/")

    await expect(page.get_by_text(EXPIRED)).to_be_visible()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()


async def test_the_session_ends_with_a_message_when_its_token_expires(page: Page) -> None:
    await page.clock.install()
    await log_in(page)

    await page.clock.fast_forward("01:00:01")  # tokens live ACCESS_TOKEN_EXPIRE_MINUTES (60)

    await expect(page.get_by_text(EXPIRED)).to_be_visible()
    await expect(page.get_by_label("Email")).to_be_visible()


async def test_the_token_never_goes_into_a_url(page: Page, served: Served) -> None:
    urls: list[str] = []
    sent: list[str] = []

    def on_socket(socket: WebSocket) -> None:
        urls.append(socket.url)
        socket.on("framesent", lambda payload: sent.append(str(payload)))

    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", on_socket)
    await log_in(page)
    await expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    for view in ("Configs", "Execution logs", "Data", "Overview"):
        await open_view(page, view)
    token = json.loads(await page.evaluate("sessionStorage.getItem('altar.session')"))["token"]

    assert any("/events" in url for url in urls)
    assert not [url for url in urls if token in url]
    assert sent
    assert token in sent[0]  # the socket got it as its first message


async def test_the_dashboard_works_with_the_keyboard_alone(page: Page) -> None:
    await page.goto("/")
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.keyboard.type(ADMIN_EMAIL)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

    configs_link = page.get_by_role("navigation", name="Views").get_by_role("link", name="Configs")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await configs_link.evaluate("link => link === document.activeElement"):
            break
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Configs", level=1)).to_be_visible()

    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "New config":
            break
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Symbol")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_label("Symbol")).to_have_count(0)
