"""The Heroku files: versions agree, and the Procfile's processes really start (with honcho)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.db.pool import Pool

ROOT = Path(__file__).resolve().parents[1]
STRONG_KEY = "procfile-check-" + "k3y" * 12


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runtime_txt_and_python_version_name_the_same_python() -> None:
    runtime = (ROOT / "runtime.txt").read_text().strip()
    python_version = (ROOT / ".python-version").read_text().strip()

    assert runtime == f"python-{python_version}"


def test_procfile_has_release_and_web() -> None:
    processes = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line and not line.startswith("#")
    )

    assert processes["release"].strip() == "python -m backend release"
    assert "$PORT" in processes["web"]


def _procfile_env(database_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "SECRET_KEY": STRONG_KEY,
        "ADMIN_EMAIL": "Release@Example.com",
        "ADMIN_PASSWORD": "release-phase-password",
        "LOG_LEVEL": "WARNING",
    }


async def test_procfile_release_then_web_serve_the_app(pool: Pool, database_url: str) -> None:
    port = _free_port()
    env = _procfile_env(database_url, port)
    honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-d", str(ROOT)]

    release = subprocess.run([*honcho, "start", "release"], env=env, capture_output=True, text=True, timeout=120)

    assert release.returncode == 0, release.stdout + release.stderr
    assert await pool.fetchval("SELECT role FROM users WHERE email = 'release@example.com'") == "admin"

    web = subprocess.Popen([*honcho, "start", "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = None
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline and web.poll() is None:
                try:
                    ready = await http.get(f"http://127.0.0.1:{port}/health/ready")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            assert ready is not None, "the web process never answered"
            assert ready.status_code == 200
            login = await http.post(
                f"http://127.0.0.1:{port}/api/v1/auth/login",
                content=b'{"email": "release@example.com", "password": "release-phase-password"}',
            )
            assert login.status_code == 200
    finally:
        web.send_signal(signal.SIGINT)
        try:
            web.wait(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL"])
def test_release_in_production_refuses_incomplete_configuration(database_url: str, missing: str) -> None:
    env = _procfile_env(database_url, 0)
    del env[missing]

    result = subprocess.run(
        [sys.executable, "-m", "backend", "release"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.startswith(f"configuration error: {missing}:")


def test_procfile_web_with_only_database_url_and_port_refuses_to_start_naming_secret_key(database_url: str) -> None:
    """A Heroku app created without app.json, or a container given the two variables it cannot do without."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(_free_port()),
        "DATABASE_URL": database_url,
    }
    honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", "web"]

    web = subprocess.run(honcho, env=env, capture_output=True, text=True, timeout=60)

    assert web.returncode != 0
    [refusal] = [line for line in web.stdout.splitlines() if "configuration error" in line]
    assert refusal.split("| ", 1)[1].startswith("configuration error: SECRET_KEY: required to sign login tokens")
