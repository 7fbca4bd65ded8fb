"""The command line: users and passwords, the release phase, and the local `run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from litestar.security.jwt import Token

from backend.auth.local_key import LOCAL_SECRET_KEY_PATH
from backend.db.pool import Pool
from tests.test_heroku_files import STRONG_KEY, _free_port

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
PUBLISHED_KEY = "dev-only-secret-key-not-for-production-use-0000"  # the key this code once signed with


def _cli(database_url: str, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args],
        input=stdin,
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_create_user_then_log_in(pool: Pool, database_url: str, client: httpx.AsyncClient) -> None:
    result = _cli(
        database_url, "create-user", "Alice@Example.com", "--role", "viewer", "--password-stdin", stdin="s3cret-pass\n"
    )

    assert result.returncode == 0, result.stderr
    assert "created viewer alice@example.com" in result.stdout
    login = await client.post("/api/v1/auth/login", json={"email": "alice@example.com", "password": "s3cret-pass"})
    assert login.status_code == 200
    assert login.json()["user"]["role"] == "viewer"


async def test_create_user_twice_fails_clearly(pool: Pool, database_url: str) -> None:
    _cli(database_url, "create-user", "bob@example.com", "--password-stdin", stdin="long-enough\n")

    again = _cli(database_url, "create-user", "bob@example.com", "--password-stdin", stdin="long-enough\n")

    assert again.returncode != 0
    assert "exists already" in again.stderr


async def test_short_password_is_refused(pool: Pool, database_url: str) -> None:
    result = _cli(database_url, "create-user", "carol@example.com", "--password-stdin", stdin="short\n")

    assert result.returncode != 0
    assert "at least 8" in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_set_password_changes_the_login(pool: Pool, database_url: str, client: httpx.AsyncClient) -> None:
    _cli(database_url, "create-user", "dave@example.com", "--password-stdin", stdin="first-password\n")

    result = _cli(database_url, "set-password", "dave@example.com", "--password-stdin", stdin="second-password\n")

    assert result.returncode == 0, result.stderr
    old = await client.post("/api/v1/auth/login", json={"email": "dave@example.com", "password": "first-password"})
    new = await client.post("/api/v1/auth/login", json={"email": "dave@example.com", "password": "second-password"})
    assert (old.status_code, new.status_code) == (401, 200)


async def test_release_in_production_never_invents_an_admin(pool: Pool, database_url: str) -> None:
    result = _cli(database_url, "release", APP_ENV="production", SECRET_KEY=STRONG_KEY)

    assert result.returncode == 0, result.stderr
    assert "set ADMIN_EMAIL and ADMIN_PASSWORD" in result.stdout
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


class LocalRun:
    """``python -m backend run`` on 127.0.0.1 with only DATABASE_URL set, up to its "serving on" lines."""

    def __init__(self, database_url: str, *args: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "run", "--port", str(self.port), *args],
            env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            lines.append(self.process.stdout.readline())
            if "docs:" in lines[-1]:
                break
        self.output = "".join(lines)
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The answer once the server accepts connections."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            for _ in range(100):
                try:
                    return await http.request(method, path, **options)
                except httpx.TransportError:
                    time.sleep(0.1)
        raise AssertionError(f"the server never answered:\n{self.output}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


async def test_local_run_creates_an_admin_once_and_serves(pool: Pool, database_url: str) -> None:
    run = LocalRun(database_url)
    try:
        match = re.search(r"admin: created for local use only: (\S+) / (\S+)", run.output)
        assert match, run.output
        assert f"http://127.0.0.1:{run.port}/docs" in run.output
        assert f"dashboard: http://127.0.0.1:{run.port}/ " in run.output
        login = await run.request("POST", LOGIN, json={"email": match.group(1), "password": match.group(2)})
        assert login.status_code == 200
    finally:
        run.stop()


async def test_local_run_signs_tokens_with_a_random_key_that_survives_a_restart(pool: Pool, database_url: str) -> None:
    first = LocalRun(database_url)
    try:
        match = re.search(r"admin: created for local use only: (\S+) / (\S+)", first.output)
        assert match, first.output
        login = await first.request("POST", LOGIN, json={"email": match.group(1), "password": match.group(2)})
        token = login.json()["access_token"]
    finally:
        first.stop()

    second = LocalRun(database_url)
    try:
        me = await second.request("GET", ME, headers={"Authorization": f"Bearer {token}"})
        forged = Token(exp=datetime.now(UTC) + timedelta(hours=1), sub="1", extras={"role": "admin"})
        forged_me = await second.request(
            "GET", ME, headers={"Authorization": f"Bearer {forged.encode(PUBLISHED_KEY, 'HS256')}"}
        )
    finally:
        second.stop()

    assert me.status_code == 200
    assert forged_me.status_code == 401
    assert str(LOCAL_SECRET_KEY_PATH) in second.output
    assert LOCAL_SECRET_KEY_PATH.stat().st_mode & 0o777 == 0o600


def test_local_run_on_an_address_others_reach_refuses_to_start_without_secret_key(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend", "run", "--host", "0.0.0.0", "--port", str(_free_port())],  # noqa: S104
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("configuration error: SECRET_KEY: required to serve on 0.0.0.0")


def test_serve_with_only_database_url_and_port_refuses_to_start_naming_secret_key(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--host", "0.0.0.0", "--port", str(_free_port())],  # noqa: S104
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("configuration error: SECRET_KEY: required to sign login tokens")
