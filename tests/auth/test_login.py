"""POST /api/v1/auth/login and GET /api/v1/auth/me."""

from __future__ import annotations

import json
from dataclasses import replace

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.auth import repository as users
from backend.db.pool import Pool
from backend.settings import Settings
from tests.conftest import PASSWORD, PASSWORD_HASH, TEST_SECRET_KEY

LOGIN = "/api/v1/auth/login"
Client = AsyncTestClient[Litestar]


async def _user(pool: Pool, email: str = "trader@example.com", role: users.Role = "admin") -> None:
    await users.create_user(pool, email=email, password_hash=PASSWORD_HASH, role=role)


async def test_good_credentials_give_a_bearer_token(client: Client, pool: Pool) -> None:
    await _user(pool)

    response = await client.post(LOGIN, json={"email": "trader@example.com", "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].count(".") == 2
    assert body["user"]["email"] == "trader@example.com"
    assert "password" not in response.text
    assert "hash" not in response.text


async def test_login_without_content_type_works(client: Client, pool: Pool) -> None:
    await _user(pool)
    body = json.dumps({"email": "trader@example.com", "password": PASSWORD}).encode()

    response = await client.post(LOGIN, content=body, headers={"Content-Type": ""})

    assert response.status_code == 200, response.text


async def test_login_as_curl_d_sends_it_works(client: Client, pool: Pool) -> None:
    await _user(pool)
    body = json.dumps({"email": "trader@example.com", "password": PASSWORD})

    response = await client.post(LOGIN, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 200, response.text


async def test_email_is_case_insensitive(client: Client, pool: Pool) -> None:
    await _user(pool)

    response = await client.post(LOGIN, json={"email": "Trader@Example.COM", "password": PASSWORD})

    assert response.status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(client: Client, pool: Pool) -> None:
    await _user(pool)

    wrong_password = await client.post(LOGIN, json={"email": "trader@example.com", "password": "nope-nope"})
    unknown_email = await client.post(LOGIN, json={"email": "nobody@example.com", "password": PASSWORD})

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"] == "Incorrect email or password"


async def test_login_body_missing_a_field_names_it(client: Client) -> None:
    response = await client.post(LOGIN, json={"email": "trader@example.com"})

    assert response.status_code == 400
    assert "password" in response.text


async def test_repeated_failures_of_one_email_from_one_address_answer_429_even_for_the_right_password(
    client: Client, pool: Pool
) -> None:
    await _user(pool)
    for _ in range(5):
        assert (await client.post(LOGIN, json={"email": "trader@example.com", "password": "bad"})).status_code == 401

    blocked = await client.post(LOGIN, json={"email": "trader@example.com", "password": PASSWORD})

    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 900


async def test_repeated_failures_from_one_address_answer_429(client: Client, pool: Pool) -> None:
    await _user(pool)
    for n in range(20):
        await client.post(LOGIN, json={"email": f"guess{n}@example.com", "password": "bad"})

    blocked = await client.post(LOGIN, json={"email": "trader@example.com", "password": PASSWORD})

    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers


async def test_me_returns_the_token_owner(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.get("/api/v1/auth/me", headers=viewer_headers)

    assert response.status_code == 200
    assert response.json()["email"] == "viewer@example.com"
    assert response.json()["role"] == "viewer"


async def test_me_without_token_is_401(client: Client) -> None:
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_a_successful_login_sets_a_device_cookie_no_script_reads_and_no_other_site_sends(
    client: Client, pool: Pool
) -> None:
    await _user(pool)

    response = await client.post(LOGIN, json={"email": "trader@example.com", "password": PASSWORD})

    [set_cookie] = response.headers.get_list("set-cookie")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert set_cookie.startswith("device_")
    assert "trader" not in set_cookie
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in set_cookie.lower()
    assert "Path=/api/v1/auth/login" in set_cookie
    assert "secure" not in attributes  # a test server speaks plain HTTP


async def test_a_failed_login_sets_no_device_cookie(client: Client, pool: Pool) -> None:
    await _user(pool)

    response = await client.post(LOGIN, json={"email": "trader@example.com", "password": "not it"})

    assert response.status_code == 401
    assert "set-cookie" not in response.headers


async def test_in_production_the_device_cookie_travels_over_https_only(settings: Settings, pool: Pool) -> None:
    await _user(pool)
    production = replace(settings, app_env="production", secret_key=TEST_SECRET_KEY)

    async with AsyncTestClient(app=create_app(production)) as client:
        response = await client.post(LOGIN, json={"email": "trader@example.com", "password": PASSWORD})

    assert response.status_code == 200
    assert "; secure" in response.headers["set-cookie"].lower()
