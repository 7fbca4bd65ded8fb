"""Headers every answer carries (security headers, the request id) and the Authorization scheme."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from litestar import Litestar, Response, get
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings

Client = AsyncTestClient[Litestar]
CONFIGS = "/api/v1/admin/data-collection/configs"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/no/such/route"),
        ("POST", "/api/v1/auth/login"),
        ("GET", CONFIGS),
        ("GET", "/schema/swagger"),
        ("OPTIONS", CONFIGS),
    ],
)
async def test_every_response_carries_the_security_headers(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)

    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "Strict-Transport-Security" not in response.headers


async def test_a_content_security_policy_set_by_a_route_is_kept(app: Litestar) -> None:
    @get("/health/page", include_in_schema=False, media_type="text/html")
    async def page() -> Response[str]:
        return Response("<p>hi</p>", headers={"Content-Security-Policy": "default-src 'self'"})

    app.register(page)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/health/page")

    assert response.headers.get_list("Content-Security-Policy") == ["default-src 'self'"]


@pytest.mark.parametrize(
    ("app_env", "base_url", "hsts"),
    [
        ("production", "https://hub.example.com", True),
        ("production", "http://hub.example.com", False),
        ("development", "https://hub.example.com", False),
    ],
)
async def test_hsts_is_sent_in_production_over_https_only(
    settings: Settings, app_env: str, base_url: str, hsts: bool
) -> None:
    app = create_app(replace(settings, app_env=app_env))
    async with AsyncTestClient(app=app, base_url=base_url) as client:
        response = await client.get("/health")

    assert ("Strict-Transport-Security" in response.headers) is hsts


async def test_a_request_id_from_the_router_is_kept(client: Client) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "f3b2c1d0-heroku"})

    assert response.headers["X-Request-ID"] == "f3b2c1d0-heroku"


@pytest.mark.parametrize("incoming", [None, "not an id\x7f", "x" * 500])
async def test_each_request_gets_an_id_when_it_brings_no_usable_one(client: Client, incoming: str | None) -> None:
    response = await client.get("/health", headers={"X-Request-ID": incoming} if incoming else {})

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


async def test_a_token_under_another_scheme_word_is_401(client: Client, admin_headers: dict[str, str]) -> None:
    token = admin_headers["Authorization"].removeprefix("Bearer ")

    response = await client.get(CONFIGS, headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


async def test_the_bearer_scheme_word_is_case_insensitive(client: Client, admin_headers: dict[str, str]) -> None:
    token = admin_headers["Authorization"].removeprefix("Bearer ")

    response = await client.get(CONFIGS, headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


@pytest.mark.parametrize(("origins", "credentials"), [(("https://app.example.com",), "true"), (("*",), None)])
async def test_a_listed_origin_may_keep_the_login_device_cookie_and_a_wildcard_may_not(
    settings: Settings, origins: tuple[str, ...], credentials: str | None
) -> None:
    app = create_app(replace(settings, cors_allowed_origins=origins))
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}

    async with AsyncTestClient(app=app) as client:
        response = await client.options("/api/v1/auth/login", headers=preflight)

    assert response.headers.get("Access-Control-Allow-Credentials") == credentials
