"""Logging in over HTTP as clients at different addresses: the app on uvicorn behind a trusted proxy
(as on Heroku), each request's address given by ``X-Forwarded-For``."""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest
import uvicorn
from litestar import Litestar

from backend.app import create_app
from backend.auth import repository as users
from backend.db.pool import Pool
from backend.settings import Settings
from tests.conftest import PASSWORD_HASH, serving

LOGIN = "/api/v1/auth/login"
_networks = itertools.count(1)


def new_addresses(count: int) -> list[str]:
    """IPv4 addresses no other test (or earlier run: Redis keeps counts) ever used."""
    network = f"10.{secrets.randbelow(256)}.{next(_networks) % 256}"
    return [f"{network}.{n + 1}" for n in range(count)]


def new_address() -> str:
    return new_addresses(1)[0]


@dataclass
class LoginClient:
    """Logs in at the served app; each call is a client at ``address`` sending only ``cookies``."""

    http: httpx.AsyncClient
    app: Litestar

    async def login(
        self, email: str, password: str, address: str, cookies: httpx.Cookies | None = None
    ) -> httpx.Response:
        self.http.cookies.clear()  # no cookie jar shared between calls: each sends what it is given
        headers = {"X-Forwarded-For": address}
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        return await self.http.post(LOGIN, json={"email": email, "password": password}, headers=headers)

    async def guess(self, email: str, addresses: list[str], times: int) -> list[int]:
        """``times`` wrong passwords from each address, one after the other; their statuses."""
        return [
            (await self.login(email, "wrong-password", address)).status_code
            for address in addresses
            for _ in range(times)
        ]


async def serve_logins(settings: Settings) -> AsyncIterator[LoginClient]:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", proxy_headers=True, forwarded_allow_ips="127.0.0.1"
    )
    async with serving(config) as base_url, httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        yield LoginClient(http, app)


@pytest.fixture
async def email(pool: Pool) -> str:
    """A user of this test's own (a new email each run: Redis keeps counts between runs)."""
    address = f"trader-{uuid.uuid4().hex[:8]}@example.com"
    await users.create_user(pool, email=address, password_hash=PASSWORD_HASH, role="admin")
    return address


def patient(settings: Settings) -> Settings:
    """Password checks that wait long for a slot: this shared machine may be slow, and tests of the
    counts are not about the slots."""
    return replace(settings, login_password_check_wait_seconds=120)
