"""Schema-driven fuzzing: schemathesis generates requests for every operation of the published
OpenAPI document, signed in as an admin, against the app served by uvicorn on a real database.

Valid and invalid requests (schemathesis' positive and negative modes) are sent. No answer may
be a 5xx other than a 503 the operation documents, and every answer must match the document
(status code, body, content type, headers). Invalid requests are not required to be refused:
unknown query parameters are ignored, as HTTP APIs commonly do. The suite runs FUZZ_EXAMPLES (default 25)
examples per operation; ``make fuzz`` runs many more.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from backend.app import create_app
from backend.auth.passwords import hash_password
from backend.settings import Settings
from tests.conftest import TEST_SECRET_KEY

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_ADMIN = "fuzz-admin@example.com"
FUZZ_PASSWORD = "fuzzing all the way down"


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
def served_app(database_url: str) -> Iterator[tuple[str, str]]:
    """The app under uvicorn on a free port (its own thread), and an admin's token."""
    asyncio.run(_create_admin(database_url))
    app_settings = Settings(
        app_env="test", database_url=database_url, secret_key=TEST_SECRET_KEY, scheduler_backend="off"
    )
    server = uvicorn.Server(uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=0, log_level="warning"))
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
        yield base_url, login.json()["access_token"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def api_schema(served_app: tuple[str, str]) -> schemathesis.BaseSchema:
    base_url, _ = served_app
    return schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json")


@schemathesis.check
def no_undocumented_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    """A 5xx is a failure unless it is a 503 the operation documents (the service it needs is down)."""
    if response.status_code < 500:
        return
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code == 503 and "503" in documented:
        return
    raise AssertionError(f"{response.status_code} {case.method} {case.path}: {response.text[:300]}")


CHECKS = [
    no_undocumented_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, token: str, statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_5xx_and_every_answer_matches_the_schema(
    api_schema: schemathesis.BaseSchema, served_app: tuple[str, str], mode: GenerationMode
) -> None:
    base_url, token = served_app
    failures = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        try:
            _fuzz(operation, mode, base_url, token, statuses)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to make invalid: no inputs
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz ({mode.value}, {FUZZ_EXAMPLES} examples per operation): {statuses.total()} requests in "
        f"{elapsed:.0f} s, by status {dict(sorted(statuses.items()))}; load: {os.getloadavg()[0]:.2f}"
    )
    assert failures == [], "\n\n".join(failures)
