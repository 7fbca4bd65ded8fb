"""The command line as a newcomer and an operator meet it: `.env`, a busy port, one log format."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backend.db.pool import Pool
from tests.conftest import TEST_SECRET_KEY
from tests.test_heroku_files import _free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(**values: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **values}


def _create_user(cwd: Path, email: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", "create-user", email, "--password-stdin"],
        input="a long enough password\n",
        cwd=cwd,
        env=_env(LOG_LEVEL="WARNING", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_command_line_reads_dotenv(pool: Pool, database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"# local settings\nDATABASE_URL={database_url}\n")

    result = _create_user(tmp_path, "from-dotenv@example.com")

    assert result.returncode == 0, result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = 'from-dotenv@example.com'") == 1


async def test_the_real_environment_wins_over_dotenv(pool: Pool, database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://nobody@127.0.0.1:1/nothing\n")

    result = _create_user(tmp_path, "from-environment@example.com", DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    assert await pool.fetchval("SELECT count(*) FROM users WHERE email = 'from-environment@example.com'") == 1


def test_a_busy_port_is_the_first_and_only_message(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "backend", "run", "--port", str(port)],
            env=_env(DATABASE_URL=database_url),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert result.stdout == ""  # no migrations, no admin, no "serving on"
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_importing_the_embedded_postgres_prints_no_platformdirs_warning() -> None:
    env = {key: value for key, value in _env().items() if key != "XDG_RUNTIME_DIR"}
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", "from backend.db.embedded import _import_pgserver; _import_pgserver()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


async def test_json_logs_cover_the_app_and_uvicorn_and_redact_tokens(pool: Pool, database_url: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--port", str(port)],
        env=_env(
            DATABASE_URL=database_url,
            SECRET_KEY=TEST_SECRET_KEY,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            SCHEDULER_BACKEND="off",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    await http.get("/health")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.1)
            unauthorized = await http.get("/api/v1/admin/data-collection/configs?token=eyJ.secret.sig")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)

    assert unauthorized.status_code == 401
    lines = [line for line in stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert "eyJ.secret.sig" not in stderr
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "uvicorn.access", "backend.web.errors"} <= loggers
    [client_error] = [entry for entry in entries if entry["logger"] == "backend.web.errors"]
    assert client_error["level"] == "INFO"
    assert client_error["request_id"] == unauthorized.headers["X-Request-ID"]
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access" and "/configs" in entry["message"]]
    assert "token=[redacted]" in access[0]["message"]
