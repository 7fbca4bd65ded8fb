"""The command line: users and passwords, the release phase, and the local `run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from backend.db.pool import Pool
from tests.test_heroku_files import STRONG_KEY, _free_port


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


async def test_local_run_creates_an_admin_once_and_serves(pool: Pool, database_url: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "run", "--port", str(port)],
        env={"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("docs:" in line for line in lines) and process.poll() is None:
            lines.append(process.stdout.readline())
        output = "".join(lines)
        match = re.search(r"admin: created for local use only: (\S+) / (\S+)", output)
        assert match, output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert f"dashboard: http://127.0.0.1:{port}/ " in output
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    login = await http.post(
                        f"http://127.0.0.1:{port}/api/v1/auth/login",
                        json={"email": match.group(1), "password": match.group(2)},
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        assert login.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
