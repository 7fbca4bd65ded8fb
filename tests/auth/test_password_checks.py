"""Passwords are checked a few at a time: a burst of logins waits for a slot, and past a short wait
answers 503 with Retry-After, while a device that logged in before has a slot of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from backend.auth.passwords import PasswordVerifier
from backend.settings import Settings
from tests.auth.conftest import LoginClient, new_address, patient, serve_logins
from tests.conftest import PASSWORD

PER_PAIR = 5  # LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS (default)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[LoginClient]:
    """One password check at a time, and a login waits one second for it."""
    quick = replace(settings, login_concurrent_password_checks=1, login_password_check_wait_seconds=1)
    async for served in serve_logins(quick):
        yield served


def _verifier(client: LoginClient) -> PasswordVerifier:
    verifier: PasswordVerifier = client.app.state.password_verifier
    return verifier


async def test_a_login_that_finds_every_check_slot_taken_answers_503_with_retry_after(
    client: LoginClient, email: str
) -> None:
    async with _verifier(client).slot(trusted=False):  # another login is being checked
        response = await client.login(email, PASSWORD, new_address())

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["detail"] == "Too many logins are being checked right now, try again shortly"


async def test_a_login_refused_for_a_busy_server_counts_against_no_limit(client: LoginClient, email: str) -> None:
    address = new_address()
    async with _verifier(client).slot(trusted=False):
        busy = [(await client.login(email, PASSWORD, address)).status_code for _ in range(PER_PAIR + 1)]

    assert busy == [503] * (PER_PAIR + 1)
    assert (await client.login(email, PASSWORD, address)).status_code == 200


async def test_a_trusted_device_is_checked_while_a_burst_holds_every_other_slot(
    client: LoginClient, email: str
) -> None:
    device = (await client.login(email, PASSWORD, new_address())).cookies
    async with _verifier(client).slot(trusted=False):
        trusted = await client.login(email, PASSWORD, new_address(), cookies=device)

    assert trusted.status_code == 200


async def test_a_login_waits_for_a_slot_that_comes_free_in_time(settings: Settings, email: str) -> None:
    async for client in serve_logins(patient(settings)):
        async with _verifier(client).slot(trusted=False):
            login = asyncio.create_task(client.login(email, PASSWORD, new_address()))
            await asyncio.sleep(0.5)  # the login reaches the slot and waits there
            assert not login.done()

        assert (await login).status_code == 200
