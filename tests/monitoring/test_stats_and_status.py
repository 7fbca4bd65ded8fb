"""GET /stats and GET /status: their fields, computed in SQL, sane on an empty database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.monitoring.conftest import ADMIN_PATH, InsertConfig, InsertLog

Client = AsyncTestClient[Litestar]
EMPTY_STATS = {
    "total_executions": 0,
    "successful_executions": 0,
    "failed_executions": 0,
    "running_executions": 0,
    "partial_executions": 0,
    "success_rate": 0.0,
    "average_duration_seconds": None,
    "total_records_collected": 0,
    "last_execution": None,
}


def _ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def test_stats_of_an_empty_database_are_zeros_and_nulls(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.get(f"{ADMIN_PATH}/stats", headers=viewer_headers)

    assert response.status_code == 200
    assert response.json() == EMPTY_STATS


async def test_stats_count_each_status_and_rate_finished_runs(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="success", duration_seconds=1.0, records_collected=100, started_at=_ago(hours=3))
    await insert_log(status="success", duration_seconds=2.0, records_collected=50, started_at=_ago(hours=2))
    await insert_log(status="failed", duration_seconds=3.0, records_collected=0, started_at=_ago(hours=1))
    await insert_log(status="partial", duration_seconds=6.0, records_collected=7, started_at=_ago(minutes=30))
    newest = _ago(minutes=5)
    await insert_log(status="running", started_at=newest)

    stats = (await client.get(f"{ADMIN_PATH}/stats?hours=24", headers=admin_headers)).json()

    assert stats == {
        "total_executions": 5,
        "successful_executions": 2,
        "failed_executions": 1,
        "running_executions": 1,
        "partial_executions": 1,
        "success_rate": 50.0,  # 2 of the 4 finished runs
        "average_duration_seconds": 3.0,
        "total_records_collected": 157,
        "last_execution": newest.isoformat().replace("+00:00", "Z"),
    }


async def test_success_rate_has_two_decimals(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="success")
    await insert_log(status="failed")
    await insert_log(status="failed")

    assert (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).json()["success_rate"] == 33.33


async def test_only_running_runs_give_a_zero_rate_not_a_division_by_zero(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="running")

    stats = (await client.get(f"{ADMIN_PATH}/stats", headers=admin_headers)).json()

    assert (stats["success_rate"], stats["average_duration_seconds"], stats["running_executions"]) == (0.0, None, 1)


async def test_stats_cover_only_the_last_hours(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(started_at=_ago(hours=2))
    await insert_log(started_at=_ago(hours=30))

    assert (await client.get(f"{ADMIN_PATH}/stats?hours=1", headers=admin_headers)).json()["total_executions"] == 0
    assert (await client.get(f"{ADMIN_PATH}/stats?hours=3", headers=admin_headers)).json()["total_executions"] == 1
    assert (await client.get(f"{ADMIN_PATH}/stats?hours=48", headers=admin_headers)).json()["total_executions"] == 2


async def test_stats_of_one_job_type(client: Client, admin_headers: dict[str, str], insert_log: InsertLog) -> None:
    await insert_log(job_type="data_collection")
    await insert_log(job_type="cleanup", job_name="cleanup", trigger="system")

    response = await client.get(f"{ADMIN_PATH}/stats?job_type=cleanup", headers=admin_headers)

    assert response.json()["total_executions"] == 1


@pytest.mark.parametrize("query", ["?hours=0", "?hours=721", "?hours=day"])
async def test_bad_hours_are_400_naming_hours(client: Client, admin_headers: dict[str, str], query: str) -> None:
    response = await client.get(f"{ADMIN_PATH}/stats{query}", headers=admin_headers)

    assert response.status_code == 400
    assert "hours" in response.text


async def test_status_has_exactly_its_documented_fields_the_scheduler_freshness_and_exchanges(
    client: Client, viewer_headers: dict[str, str]
) -> None:
    response = await client.get(f"{ADMIN_PATH}/status", headers=viewer_headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "total_configs",
        "enabled_configs",
        "disabled_configs",
        "active_jobs",
        "recent_executions",
        "stats",
        "scheduler",
        "freshness",
        "exchanges",
    }
    assert body["stats"] == EMPTY_STATS
    assert (body["total_configs"], body["active_jobs"], body["recent_executions"]) == (0, 0, [])
    assert body["scheduler"]["alive"] is False
    assert body["freshness"] == {"series": 0, "stale_series": 0, "worst": []}
    assert body["exchanges"] == []


async def test_status_counts_configs_and_shows_the_ten_newest_runs(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    btc = await insert_config("BTC/USDT")
    await insert_config("ETH/USDT")
    await insert_config("XRP/USDT", enabled=False)
    ids = [await insert_log(config_id=btc, started_at=_ago(minutes=60 - i)) for i in range(12)]
    await insert_log(config_id=btc, started_at=_ago(hours=30))

    body = (await client.get(f"{ADMIN_PATH}/status", headers=admin_headers)).json()

    assert (body["total_configs"], body["enabled_configs"], body["disabled_configs"]) == (3, 2, 1)
    assert [log["id"] for log in body["recent_executions"]] == ids[::-1][:10]
    assert body["stats"]["total_executions"] == 12  # the last 24 hours only


async def test_status_active_jobs_come_from_the_scheduler_state(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    await insert_config("BTC/USDT")
    await insert_config("ETH/USDT")
    disabled = await insert_config("XRP/USDT", enabled=False)
    await insert_log(config_id=disabled, status="running", trigger="manual")

    body = (await client.get(f"{ADMIN_PATH}/status", headers=admin_headers)).json()

    # two scheduled configs, plus the manual run of the disabled one
    assert body["active_jobs"] == body["scheduler"]["active_jobs"] == 3
    assert body["scheduler"]["runs_in_progress"] == 1


async def test_status_stats_count_collection_runs_not_the_daily_cleanup(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="failed")
    cleanup = await insert_log(job_type="cleanup", job_name="cleanup", trigger="system", symbol=None, exchange=None)

    body = (await client.get(f"{ADMIN_PATH}/status", headers=admin_headers)).json()

    stats = body["stats"]
    assert (stats["total_executions"], stats["failed_executions"], stats["success_rate"]) == (1, 1, 0.0)
    assert cleanup in [log["id"] for log in body["recent_executions"]]  # still listed among the runs
