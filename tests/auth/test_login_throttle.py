"""Login limits, seen from clients at different addresses, with counts in this process's memory or
in Redis (as every process of a deployment shares them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from backend.auth import repository as users
from backend.db.pool import Pool
from backend.settings import Settings
from tests.auth.conftest import LoginClient, new_address, new_addresses, patient, serve_logins
from tests.conftest import PASSWORD, PASSWORD_HASH
from tests.web.fake_postgres import refusing_postgres

PER_PAIR = 5  # LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS (default)
PER_ADDRESS = 20  # LOGIN_MAX_FAILURES_PER_ADDRESS (default)
PER_EMAIL = 50  # LOGIN_MAX_FAILURES_PER_EMAIL (default)
PER_DEVICE = 5  # LOGIN_MAX_FAILURES_PER_DEVICE (default)


@pytest.fixture(params=["memory", "redis"])
async def client(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[LoginClient]:
    """Counts in this process's memory (no REDIS_URL), or in Redis."""
    if request.param == "redis":
        settings = replace(settings, redis_url=request.getfixturevalue("redis_url"))
    async for served in serve_logins(patient(settings)):
        yield served


async def test_failures_from_one_address_do_not_lock_the_user_out_from_another(client: LoginClient, email: str) -> None:
    attacker_address, owner_address = new_addresses(2)
    assert await client.guess(email, [attacker_address], PER_PAIR) == [401] * PER_PAIR

    attacker = await client.login(email, PASSWORD, attacker_address)
    owner = await client.login(email, PASSWORD, owner_address)

    assert attacker.status_code == 429
    assert 0 < int(attacker.headers["Retry-After"]) <= 900
    assert owner.status_code == 200


async def test_failures_spread_over_many_addresses_make_unknown_devices_wait_for_that_email(
    client: LoginClient, email: str
) -> None:
    assert set(await client.guess(email, new_addresses(10), PER_EMAIL // 10)) == {401}

    response = await client.login(email, PASSWORD, new_address())

    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 900


async def test_simultaneous_guesses_for_one_email_from_one_address_are_held_to_the_limit(
    client: LoginClient, email: str
) -> None:
    address = new_address()
    answers = await asyncio.gather(*(client.login(email, "wrong-password", address) for _ in range(60)))

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(401) == PER_PAIR
    assert statuses.count(429) == 60 - PER_PAIR


async def test_a_right_password_among_simultaneous_guesses_is_checked_only_within_the_limit(
    client: LoginClient, email: str
) -> None:
    passwords = ["wrong-password"] * 35 + [PASSWORD] + ["wrong-password"] * 4
    address = new_address()

    answers = await asyncio.gather(*(client.login(email, password, address) for password in passwords))

    # the right one too is refused unless it came in among the first five
    assert [answer.status_code for answer in answers].count(429) == len(passwords) - PER_PAIR


async def test_simultaneous_guesses_over_many_emails_from_one_address_are_held_to_the_address_limit(
    client: LoginClient, pool: Pool
) -> None:
    emails = [f"guess-{uuid.uuid4().hex[:8]}@example.com" for _ in range(150)]
    await pool.executemany(
        "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'viewer')",
        [(email, PASSWORD_HASH) for email in emails],
    )

    address = new_address()
    answers = await asyncio.gather(*(client.login(email, "wrong-password", address) for email in emails))

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(401) == PER_ADDRESS
    assert statuses.count(429) == len(emails) - PER_ADDRESS


async def test_a_successful_login_counts_against_no_limit(client: LoginClient, email: str) -> None:
    address = new_address()
    for _ in range(PER_PAIR + 1):
        assert (await client.login(email, PASSWORD, address)).status_code == 200

    assert await client.guess(email, [address], PER_PAIR) == [401] * PER_PAIR


async def test_ipv6_clients_count_per_64_network(client: LoginClient, email: str) -> None:
    network = f"2001:db8:{uuid.uuid4().hex[:4]}"
    for n in range(PER_PAIR):
        await client.login(email, "wrong-password", f"{network}:2::{n + 1:x}")

    same_network = await client.login(email, PASSWORD, f"{network}:2:ffff::1")
    other_network = await client.login(email, PASSWORD, f"{network}:3::1")

    assert same_network.status_code == 429
    assert other_network.status_code == 200


async def test_a_device_that_logged_in_before_gets_in_while_ten_addresses_lock_out_unknown_devices(
    client: LoginClient, email: str
) -> None:
    known = await client.login(email, PASSWORD, new_address())
    assert set(await client.guess(email, new_addresses(10), PER_PAIR)) == {401}
    elsewhere = new_address()

    with_cookie = await client.login(email, PASSWORD, elsewhere, cookies=known.cookies)
    without_cookie = await client.login(email, PASSWORD, elsewhere)

    assert with_cookie.status_code == 200
    assert without_cookie.status_code == 429


async def test_failures_from_a_trusted_device_count_against_that_device_only(client: LoginClient, email: str) -> None:
    address = new_address()
    device = (await client.login(email, PASSWORD, address)).cookies
    for _ in range(PER_DEVICE):
        assert (await client.login(email, "wrong-password", address, cookies=device)).status_code == 401

    device_again = await client.login(email, PASSWORD, address, cookies=device)
    same_address_without_it = await client.login(email, PASSWORD, address)

    assert device_again.status_code == 429
    assert same_address_without_it.status_code == 200


async def test_a_device_cookie_is_worth_nothing_for_another_email(client: LoginClient, email: str, pool: Pool) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(pool, email=other, password_hash=PASSWORD_HASH, role="viewer")
    address = new_address()
    device = (await client.login(other, PASSWORD, address)).cookies
    await client.guess(email, new_addresses(10), PER_PAIR)

    response = await client.login(email, PASSWORD, address, cookies=device)

    assert response.status_code == 429


async def test_an_altered_device_cookie_is_not_trusted(client: LoginClient, email: str) -> None:
    address = new_address()
    known = await client.login(email, PASSWORD, address)
    [(name, value)] = known.cookies.items()
    expires, device, signature = value.split(".")
    await client.guess(email, new_addresses(10), PER_PAIR)
    altered = [
        f"{int(expires) + 86_400}.{device}.{signature}",
        f"{expires}.{device[::-1]}.{signature}",
        f"{expires}.{device}.{'0' * len(signature)}",
    ]

    statuses = [
        (await client.login(email, PASSWORD, address, cookies=httpx.Cookies({name: cookie}))).status_code
        for cookie in altered
    ]

    assert statuses == [429, 429, 429]


async def test_a_login_the_database_could_not_answer_counts_against_no_limit(settings: Settings) -> None:
    with refusing_postgres("57P03", "the database system is starting up") as url:
        async for client in serve_logins(replace(settings, database_url=url, database_pool_min_size=0)):
            address = new_address()
            statuses = [
                (await client.login("a@example.com", PASSWORD, address)).status_code for _ in range(PER_PAIR + 2)
            ]

    assert statuses == [503] * (PER_PAIR + 2)


async def test_another_deployment_on_the_same_redis_keeps_its_own_counts(
    settings: Settings, redis_url: str, email: str
) -> None:
    """Failures at one deployment do not hold back a login at another sharing its Redis."""
    address = new_address()
    ours = patient(replace(settings, redis_url=redis_url, arq_queue_name=f"ours-{uuid.uuid4().hex[:8]}"))
    theirs = replace(ours, arq_queue_name=f"theirs-{uuid.uuid4().hex[:8]}")
    async for client in serve_logins(ours):
        assert await client.guess(email, [address], PER_PAIR) == [401] * PER_PAIR
        held_back = await client.login(email, PASSWORD, address)
    async for client in serve_logins(theirs):
        other = await client.login(email, PASSWORD, address)

    assert held_back.status_code == 429
    assert other.status_code == 200
