"""Cheap polling: ETag + If-None-Match -> 304 without computing, new tag when the data changes."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.monitoring.etag import DataVersions, combine_tokens, read_data_version_tokens
from tests.monitoring.conftest import (
    ADMIN_PATH,
    NOTIFY_WAIT_SECONDS,
    InsertConfig,
    InsertLog,
    away_from_a_minute_edge,
    until_the_app_has_heard,
)

Client = AsyncTestClient[Litestar]
POLLED = ["/stats", "/status", "/stats/timeseries?hours=6&bucket=15m", "/stats/by-config"]


async def _poll_until_modified(client: Client, url: str, headers: dict[str, str], etag: str) -> Response:
    """Poll with If-None-Match as a dashboard does, until the change (its NOTIFY reaches the app)."""
    deadline = asyncio.get_running_loop().time() + NOTIFY_WAIT_SECONDS
    while True:
        response = await client.get(url, headers={**headers, "If-None-Match": etag})
        if response.status_code != 304 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
async def _away_from_a_minute_edge() -> None:
    await away_from_a_minute_edge()


async def _versions(pool: asyncpg.Pool) -> dict[str, int]:
    return {row["source"]: row["version"] for row in await pool.fetch("SELECT source, version FROM data_versions")}


@pytest.mark.parametrize("path", POLLED)
async def test_polled_answers_carry_an_etag_and_no_cache(
    client: Client, admin_headers: dict[str, str], path: str
) -> None:
    response = await client.get(f"{ADMIN_PATH}{path}", headers=admin_headers)

    assert response.status_code == 200
    assert response.headers["ETag"].startswith('W/"')
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path", POLLED)
async def test_matching_if_none_match_is_304_without_a_body(
    app: Litestar,
    client: Client,
    admin_headers: dict[str, str],
    insert_log: InsertLog,
    session_pool: asyncpg.Pool,
    path: str,
) -> None:
    await insert_log()
    await until_the_app_has_heard(app, session_pool)
    etag = (await client.get(f"{ADMIN_PATH}{path}", headers=admin_headers)).headers["ETag"]

    response = await client.get(f"{ADMIN_PATH}{path}", headers={**admin_headers, "If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "no-cache"


async def test_a_list_of_tags_or_a_strong_form_still_matches(client: Client, admin_headers: dict[str, str]) -> None:
    etag = (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).headers["ETag"]

    listed = await client.get(f"{ADMIN_PATH}/stats", headers={**admin_headers, "If-None-Match": f'"other", {etag}'})
    strong = await client.get(f"{ADMIN_PATH}/stats", headers={**admin_headers, "If-None-Match": etag[2:]})

    assert (listed.status_code, strong.status_code) == (304, 304)


@pytest.mark.parametrize("path", POLLED)
async def test_a_new_log_changes_the_tag_and_the_answer(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig, path: str
) -> None:
    config_id = await insert_config()
    first = await client.get(f"{ADMIN_PATH}{path}", headers=admin_headers)

    await insert_log(config_id=config_id)
    response = await _poll_until_modified(client, f"{ADMIN_PATH}{path}", admin_headers, first.headers["ETag"])

    assert response.status_code == 200
    assert response.headers["ETag"] != first.headers["ETag"]
    assert response.json() != first.json()


async def test_a_finished_run_changes_the_tag(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, session_pool: asyncpg.Pool
) -> None:
    log_id = await insert_log(status="running")
    etag = (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).headers["ETag"]

    await session_pool.execute(
        "UPDATE job_execution_logs SET status = 'success', finished_at = now(), duration_seconds = 1 WHERE id = $1",
        log_id,
    )
    response = await _poll_until_modified(client, f"{ADMIN_PATH}/stats", admin_headers, etag)

    assert response.status_code == 200
    assert response.json()["successful_executions"] == 1


async def test_a_heartbeat_keeps_the_tag(
    app: Litestar, client: Client, admin_headers: dict[str, str], insert_log: InsertLog, session_pool: asyncpg.Pool
) -> None:
    log_id = await insert_log(status="running")
    await until_the_app_has_heard(app, session_pool)
    etag = (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).headers["ETag"]
    before = await _versions(session_pool)

    await session_pool.execute("UPDATE job_execution_logs SET heartbeat_at = now() WHERE id = $1", log_id)
    response = await client.get(f"{ADMIN_PATH}/stats", headers={**admin_headers, "If-None-Match": etag})

    assert await _versions(session_pool) == before
    assert response.status_code == 304


async def test_a_config_change_changes_the_status_tag(
    client: Client, admin_headers: dict[str, str], insert_config: InsertConfig
) -> None:
    etag = (await client.get(f"{ADMIN_PATH}/status", headers=admin_headers)).headers["ETag"]

    await insert_config()
    response = await _poll_until_modified(client, f"{ADMIN_PATH}/status", admin_headers, etag)

    assert response.status_code == 200
    assert response.json()["total_configs"] == 1


@pytest.mark.parametrize("path", ["/stats", "/stats/timeseries?hours=168&bucket=1h", "/stats/by-config"])
async def test_304_runs_no_query_over_the_logs(
    app: Litestar,
    client: Client,
    admin_headers: dict[str, str],
    insert_log: InsertLog,
    session_pool: asyncpg.Pool,
    database_url: str,
    path: str,
) -> None:
    """While another session holds an exclusive lock on the logs, any query over them would wait."""
    await insert_log()
    await until_the_app_has_heard(app, session_pool)
    etag = (await client.get(f"{ADMIN_PATH}{path}", headers=admin_headers)).headers["ETag"]
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE job_execution_logs, data_collection_configs IN ACCESS EXCLUSIVE MODE")
            response = await asyncio.wait_for(
                client.get(f"{ADMIN_PATH}{path}", headers={**admin_headers, "If-None-Match": etag}), timeout=10
            )
    finally:
        await locker.close()

    assert response.status_code == 304


async def test_without_the_listener_the_version_is_read_from_the_table(
    app: Litestar, client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    app.state.data_versions.forget()  # as while the LISTEN connection is down
    etag = (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).headers["ETag"]

    await insert_log()
    response = await client.get(f"{ADMIN_PATH}/stats", headers={**admin_headers, "If-None-Match": etag})

    assert response.status_code == 200


async def test_the_notified_version_is_the_stored_one(
    app: Litestar, client: Client, admin_headers: dict[str, str], insert_log: InsertLog, session_pool: asyncpg.Pool
) -> None:
    """So processes that learnt the version either way (several dynos) agree on tags."""
    await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)
    await insert_log()

    await until_the_app_has_heard(app, session_pool)

    versions: DataVersions = app.state.data_versions
    assert versions.known
    assert versions.current() == combine_tokens(await read_data_version_tokens(session_pool))
