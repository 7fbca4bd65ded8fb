"""Failed-login limits, seen from clients at different addresses: the app on uvicorn behind a trusted
proxy (as on Heroku), each request's address given by ``X-Forwarded-For``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import httpx
import pytest
import uvicorn

from backend.app import create_app
from backend.auth import repository as users
from backend.db.pool import Pool
from backend.settings import Settings
from tests.conftest import PASSWORD, password_hash, serving

LOGIN = "/api/v1/auth/login"
PER_PAIR = 5  # LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS (default)
PER_EMAIL = 8  # LOGIN_MAX_FAILURES_PER_EMAIL, small for the test
Login = Callable[[str, str, str], Awaitable[httpx.Response]]


async def _serve(settings: Settings) -> AsyncIterator[Login]:
    config = uvicorn.Config(
        create_app(replace(settings, login_max_failures_per_email=PER_EMAIL)),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    async with serving(config) as base_url, httpx.AsyncClient(base_url=base_url) as http:

        async def login(email: str, password: str, address: str) -> httpx.Response:
            body = {"email": email, "password": password}
            return await http.post(LOGIN, json=body, headers={"X-Forwarded-For": address})

        yield login


@pytest.fixture
async def login(settings: Settings) -> AsyncIterator[Login]:
    """Failures counted in this process's memory (no REDIS_URL)."""
    async for login in _serve(settings):
        yield login


@pytest.fixture
async def shared_login(settings: Settings, redis_url: str) -> AsyncIterator[Login]:
    """Failures counted in Redis, as every process of a deployment shares them."""
    async for login in _serve(replace(settings, redis_url=redis_url)):
        yield login


@pytest.fixture
async def email(pool: Pool) -> str:
    """A user of this test's own (a new email each run: Redis keeps counts between runs)."""
    address = f"trader-{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(pool, email=address, password_hash=await password_hash(), role="viewer")
    return address


async def test_failures_from_one_address_do_not_lock_the_user_out_from_another(login: Login, email: str) -> None:
    for _ in range(PER_PAIR):
        assert (await login(email, "wrong-password", "203.0.113.9")).status_code == 401

    attacker = await login(email, PASSWORD, "203.0.113.9")
    owner = await login(email, PASSWORD, "198.51.100.7")

    assert attacker.status_code == 429
    assert 0 < int(attacker.headers["Retry-After"]) <= 900
    assert owner.status_code == 200


async def test_failures_spread_over_many_addresses_make_new_addresses_wait_for_that_email(
    login: Login, email: str
) -> None:
    for n in range(PER_EMAIL):
        assert (await login(email, "wrong-password", f"203.0.113.{n + 1}")).status_code == 401

    response = await login(email, PASSWORD, "198.51.100.7")

    assert response.status_code == 429
    assert "Retry-After" in response.headers


async def test_an_address_the_user_logged_in_from_before_keeps_working_during_spread_failures(
    shared_login: Login, email: str
) -> None:
    assert (await shared_login(email, PASSWORD, "198.51.100.7")).status_code == 200
    for n in range(PER_EMAIL):
        await shared_login(email, "wrong-password", f"203.0.113.{n + 1}")

    from_elsewhere = await shared_login(email, PASSWORD, "192.0.2.44")
    from_home = await shared_login(email, PASSWORD, "198.51.100.7")

    assert from_elsewhere.status_code == 429
    assert from_home.status_code == 200


async def test_ipv6_clients_count_per_64_network(login: Login, email: str) -> None:
    for n in range(PER_PAIR):
        await login(email, "wrong-password", f"2001:db8:1:2::{n + 1:x}")

    same_network = await login(email, PASSWORD, "2001:db8:1:2:ffff::1")
    other_network = await login(email, PASSWORD, "2001:db8:1:3::1")

    assert same_network.status_code == 429
    assert other_network.status_code == 200
