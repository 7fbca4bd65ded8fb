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
            async with asyncio.timeout(10):
                response = await client.get(f"{ADMIN_PATH}{path}", headers={**admin_headers, "If-None-Match": etag})
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


async def test_a_claimed_slot_and_a_started_run_keep_the_config_tag(
    app: Litestar,
    client: Client,
    admin_headers: dict[str, str],
    insert_config: InsertConfig,
    session_pool: asyncpg.Pool,
) -> None:
    """The scheduler moves a config's slot and a run's start records it at every run: pollers see no change."""
    config_id = await insert_config()
    await until_the_app_has_heard(app, session_pool)
    etag = (await client.get(f"{ADMIN_PATH}/status", headers=admin_headers)).headers["ETag"]
    before = await _versions(session_pool)

    await session_pool.execute(
        "UPDATE data_collection_configs SET next_run_at = next_run_at + interval '10 minutes', "
        "schedule_anchor_at = schedule_anchor_at + interval '1 second' WHERE id = $1",
        config_id,
    )
    await session_pool.execute("UPDATE data_collection_configs SET last_run_at = now() WHERE id = $1", config_id)
    response = await client.get(f"{ADMIN_PATH}/status", headers={**admin_headers, "If-None-Match": etag})

    assert await _versions(session_pool) == before
    assert response.status_code == 304


async def test_a_search_for_stale_runs_that_finds_none_keeps_the_tag(
    app: Litestar, client: Client, admin_headers: dict[str, str], insert_log: InsertLog, session_pool: asyncpg.Pool
) -> None:
    await insert_log(status="running")
    await until_the_app_has_heard(app, session_pool)
    before = await _versions(session_pool)

    await session_pool.execute(
        "UPDATE job_execution_logs SET status = 'failed', finished_at = now() "
        "WHERE status = 'running' AND heartbeat_at < now() - interval '1 hour'"
    )

    assert await _versions(session_pool) == before


# A different value for each column a reader can see; the bookkeeping columns are left out.
LOG_CHANGES = {
    "job_name": "job_name || 'x'",
    "job_type": "job_type || 'x'",
    "config_id": "CASE WHEN config_id IS NULL THEN $2::bigint END",
    "symbol": "coalesce(symbol, '') || 'X'",
    "exchange": "coalesce(exchange, '') || 'x'",
    "timeframe": "coalesce(timeframe, '') || 'x'",
    "status": "CASE status WHEN 'success' THEN 'failed' ELSE 'success' END",
    "started_at": "started_at - interval '1 second'",
    "finished_at": "finished_at + interval '1 second'",
    "duration_seconds": "coalesce(duration_seconds, 0) + 1",
    "records_collected": "coalesce(records_collected, 0) + 1",
    "error_message": "coalesce(error_message, '') || 'x'",
    "error_type": "coalesce(error_type, '') || 'x'",
    "error_cause": "coalesce(error_cause, '') || 'x'",
    "metadata": """coalesce(metadata, '{}') || '{"changed": true}'""",
    "trigger": "CASE trigger WHEN 'manual' THEN 'system' ELSE 'manual' END",
    "scheduled_for": "coalesce(scheduled_for, now()) + interval '1 second'",
    "missed_slots": "missed_slots + 1",
}
CONFIG_CHANGES = {
    "symbol": "replace(symbol, '/', 'X/')",
    "exchange": "exchange || 'x'",
    "timeframes": "CASE WHEN timeframes = '{1h}' THEN '{1d}'::text[] ELSE '{1h}'::text[] END",
    "interval_minutes": "interval_minutes % 1440 + 1",
    "enabled": "NOT enabled",
    "description": "coalesce(description, '') || 'x'",
    "created_by": "CASE WHEN created_by IS NULL THEN $2::bigint END",
    "created_at": "created_at - interval '1 second'",
    "updated_at": "updated_at + interval '1 second'",
    "backfill_days": "backfill_days % 3650 + 1",
}
BOOKKEEPING = {
    "job_execution_logs": {"id", "heartbeat_at"},
    "data_collection_configs": {"id", "next_run_at", "last_run_at", "schedule_anchor_at"},
}
COLUMNS = "SELECT array_agg(column_name::text) FROM information_schema.columns WHERE table_name = $1"


async def test_a_change_to_any_column_a_reader_sees_changes_the_tag(
    admin_headers: dict[str, str], insert_config: InsertConfig, insert_log: InsertLog, session_pool: asyncpg.Pool
) -> None:
    """Every column but the bookkeeping ones bumps its table's version (a new column joins the
    comparisons of the triggers and these lists), and each config change is announced as an event."""
    config_id = await insert_config()
    log_id = await insert_log()
    user_id = await session_pool.fetchval("SELECT min(id) FROM users")
    events: asyncio.Queue[str] = asyncio.Queue()
    listener = await session_pool.acquire()

    def heard(*args: object) -> None:
        events.put_nowait(str(args[3]))

    await listener.add_listener("data_collection_events", heard)
    try:
        for table, changes, row_id, other_id in [
            ("job_execution_logs", LOG_CHANGES, log_id, config_id),
            ("data_collection_configs", CONFIG_CHANGES, config_id, user_id),
        ]:
            assert set(await session_pool.fetchval(COLUMNS, table)) - BOOKKEEPING[table] == set(changes)
            for column, value in changes.items():
                before = (await _versions(session_pool))[table]
                other = [other_id] if "$2" in value else []
                await session_pool.execute(f"UPDATE {table} SET {column} = {value} WHERE id = $1", row_id, *other)
                assert (await _versions(session_pool))[table] > before, column
                if table == "data_collection_configs":
                    async with asyncio.timeout(NOTIFY_WAIT_SECONDS):
                        event = await events.get()
                    assert '"config_changed"' in event, column
    finally:
        await listener.remove_listener("data_collection_events", heard)
        await session_pool.release(listener)
