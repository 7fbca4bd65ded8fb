"""Schema-driven fuzzing: schemathesis' own command line runs every one of its checks and every
phase (examples, coverage, fuzzing, stateful) against the published OpenAPI document, signed in as
an admin, against the app served by uvicorn on a real database.

Among the checks: a valid request (by the document) is never refused with a 400, an invalid one is
never accepted, no answer is a 5xx other than a 503 the operation documents (runs cannot start here:
``SCHEDULER_BACKEND=off``), and every answer matches the document. The suite runs FUZZ_EXAMPLES
(default 5) examples per operation; ``make fuzz`` runs many more. The figures of the run (requests
served, test cases, failures) are printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from litestar.types import ASGIApp, Receive, Scope, Send

from backend.app import create_app
from backend.auth.passwords import hash_password
from backend.settings import Settings
from tests.conftest import TEST_SECRET_KEY

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "1"))
FUZZ_ADMIN = "fuzz-admin@example.com"
FUZZ_PASSWORD = "fuzzing all the way down"
CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"


class CountedRequests:
    """The app, counting the HTTP requests it answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


async def _create_admin(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'admin') ON CONFLICT (email) DO NOTHING",
            FUZZ_ADMIN,
            await hash_password(FUZZ_PASSWORD),
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def served_app(database_url: str) -> Iterator[tuple[str, str, CountedRequests]]:
    """The app under uvicorn on a free port (its own thread), an admin's token, and the request count."""
    asyncio.run(_create_admin(database_url))
    # no exchange answers here (no internet): a re-verification fails at once instead of backing off
    app_settings = Settings(
        app_env="test",
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        scheduler_backend="off",
        exchange_retry_base_ms=0,
    )
    counted = CountedRequests(create_app(app_settings))
    server = uvicorn.Server(uvicorn.Config(counted, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fuzzed-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base_url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    login = httpx.post(f"{base_url}/api/v1/auth/login", json={"email": FUZZ_ADMIN, "password": FUZZ_PASSWORD})
    assert login.status_code == 200, login.text
    try:
        yield base_url, login.json()["access_token"], counted
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_every_schemathesis_check_passes_in_every_phase(
    served_app: tuple[str, str, CountedRequests], tmp_path: Path
) -> None:
    base_url, token, counted = served_app
    report = tmp_path / "report.json"
    before = counted.count
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG_FILE), "run"),
            f"{base_url}/schema/openapi.json",
            *("--header", f"Authorization: Bearer {token}"),
            *("--checks", "all", "--phases", PHASES, "--mode", "all"),
            *("--max-examples", str(FUZZ_EXAMPLES), "--seed", str(FUZZ_SEED), "--workers", "1"),
            *("--generation-database", "none", "--no-color"),
            *("--report", "json", "--report-json-path", str(report)),
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in the working directory
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(
        f"\nschemathesis {summary['schemathesis_version']}, every check, phases {PHASES}, "
        f"{FUZZ_EXAMPLES} examples per operation, seed {FUZZ_SEED}: {counted.count - before} requests served, "
        f"{cases['generated']} test cases, {cases['with_failures']} with failures "
        f"({cases['unique_failures']} unique), {len(summary['errors'])} errors, in {elapsed:.0f} s; "
        f"load {os.getloadavg()[0]:.2f}"
    )

    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert cases["with_failures"] == 0
    assert summary["errors"] == []
    assert all(phase["status"] == "success" for phase in summary["phases"].values()), summary["phases"]
