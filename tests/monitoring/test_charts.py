"""GET /stats/timeseries and /stats/by-config: series for the dashboard's charts."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings
from tests.monitoring.conftest import ADMIN_PATH, InsertConfig, InsertLog

Client = AsyncTestClient[Litestar]
TIMESERIES = f"{ADMIN_PATH}/stats/timeseries"


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def far_east_client(settings: Settings) -> AsyncIterator[Client]:
    """The app on database sessions whose TimeZone is +13:45 (Chatham Islands, with daylight saving)."""
    url = f"{settings.database_url}?timezone=Pacific/Chatham"
    app = create_app(dataclasses.replace(settings, database_url=url))
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def test_a_window_of_more_than_2000_buckets_answers_the_newest_2000(
    client: Client, viewer_headers: dict[str, str]
) -> None:
    response = await client.get(f"{TIMESERIES}?hours=720&bucket=1m", headers=viewer_headers)

    assert response.status_code == 200
    body = response.json()
    assert len(body["points"]) == 2000
    assert body["points"][0]["bucket_start"] == body["start"]
    start, end = (datetime.fromisoformat(body[key]) for key in ("start", "end"))
    assert end - start == timedelta(minutes=2000)
    assert start <= datetime.now(UTC) - timedelta(minutes=1999) < end


@pytest.mark.parametrize(("hours", "bucket", "points"), [(24, "1h", 24), (2, "15m", 8), (1, "1d", 1), (720, "6h", 120)])
async def test_one_point_per_bucket_empty_ones_zero_filled(
    client: Client, viewer_headers: dict[str, str], hours: int, bucket: str, points: int
) -> None:
    response = await client.get(f"{TIMESERIES}?hours={hours}&bucket={bucket}", headers=viewer_headers)

    assert response.status_code == 200
    body = response.json()
    assert body["bucket"] == bucket
    assert len(body["points"]) == points
    assert body["points"][0]["bucket_start"] == body["start"]
    assert {point["runs"] for point in body["points"]} == {0}
    assert body["points"][-1] == {
        "bucket_start": body["points"][-1]["bucket_start"],
        "runs": 0,
        "successes": 0,
        "failures": 0,
        "partials": 0,
        "success_rate": None,
        "average_duration_seconds": None,
        "p95_duration_seconds": None,
        "records_collected": 0,
        "average_lateness_seconds": None,
        "p95_lateness_seconds": None,
    }


async def test_runs_land_in_their_hour_with_counts_rates_and_durations(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    this_hour = _hour_start(datetime.now(UTC))
    for seconds in (1.0, 2.0, 3.0, 4.0):
        await insert_log(started_at=this_hour, duration_seconds=seconds, records_collected=5)
    await insert_log(started_at=this_hour, status="failed", duration_seconds=10.0, records_collected=0)
    await insert_log(started_at=this_hour - timedelta(hours=1), status="partial", duration_seconds=1.0)

    points = (await client.get(f"{TIMESERIES}?hours=3&bucket=1h", headers=admin_headers)).json()["points"]

    assert [point["runs"] for point in points] == [0, 1, 5]
    last = points[-1]
    assert last["bucket_start"] == _iso(this_hour)
    assert (last["successes"], last["failures"], last["partials"]) == (4, 1, 0)
    assert last["success_rate"] == 80.0
    assert last["average_duration_seconds"] == 4.0
    assert last["p95_duration_seconds"] == 8.8  # interpolated between 4 and 10
    assert last["records_collected"] == 20
    assert points[1]["partials"] == 1


async def test_lateness_is_of_scheduled_runs_against_their_slot(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    config_id = await insert_config()
    slot = _hour_start(datetime.now(UTC))
    await insert_log(config_id=config_id, scheduled_for=slot, started_at=slot + timedelta(seconds=3))
    later_slot = slot + timedelta(seconds=1)
    await insert_log(config_id=config_id, scheduled_for=later_slot, started_at=later_slot + timedelta(seconds=5))
    await insert_log(config_id=config_id, trigger="manual", started_at=slot + timedelta(seconds=30))

    last = (await client.get(f"{TIMESERIES}?hours=1&bucket=1h", headers=admin_headers)).json()["points"][-1]

    assert last["runs"] == 3
    assert last["average_lateness_seconds"] == 4.0
    assert last["p95_lateness_seconds"] == 4.9


async def test_hour_edges_are_exact(client: Client, admin_headers: dict[str, str], insert_log: InsertLog) -> None:
    this_hour = _hour_start(datetime.now(UTC))
    await insert_log(started_at=this_hour - timedelta(microseconds=1))
    await insert_log(started_at=this_hour)

    points = (await client.get(f"{TIMESERIES}?hours=2&bucket=1h", headers=admin_headers)).json()["points"]

    assert [point["runs"] for point in points] == [1, 1]


async def test_day_buckets_are_utc_days_whatever_the_database_time_zone(
    far_east_client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await insert_log(started_at=midnight - timedelta(microseconds=1))
    await insert_log(started_at=midnight)
    await insert_log(started_at=midnight + timedelta(microseconds=1))

    response = await far_east_client.get(f"{TIMESERIES}?hours=48&bucket=1d", headers=admin_headers)

    points = response.json()["points"]
    assert [point["bucket_start"] for point in points] == [_iso(midnight - timedelta(days=1)), _iso(midnight)]
    assert [point["runs"] for point in points] == [1, 2]


async def test_timeseries_of_one_config_or_job_type(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    btc = await insert_config("BTC/USDT")
    eth = await insert_config("ETH/USDT")
    await insert_log(config_id=btc)
    await insert_log(config_id=eth)
    await insert_log(job_type="cleanup", job_name="cleanup", trigger="system")

    async def runs(query: str) -> int:
        response = await client.get(f"{TIMESERIES}?hours=1&bucket=1h{query}", headers=admin_headers)
        return sum(point["runs"] for point in response.json()["points"])

    assert await runs("") == 3
    assert await runs(f"&config_id={btc}") == 1
    assert await runs("&job_type=data_collection") == 2


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("?bucket=2h", "bucket"),
        ("?hours=0", "hours"),
        ("?config_id=-1", "config_id"),
    ],
)
async def test_bad_timeseries_requests_are_400_naming_the_parameter(
    client: Client, admin_headers: dict[str, str], query: str, name: str
) -> None:
    response = await client.get(f"{TIMESERIES}{query}", headers=admin_headers)

    assert response.status_code == 400
    assert name in response.text


async def test_by_config_lists_every_config_with_its_window_and_latest_error(
    client: Client, viewer_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    btc = await insert_config("BTC/USDT")
    eth = await insert_config("ETH/USDT", exchange="kraken", enabled=False)
    now = datetime.now(UTC)
    await insert_log(config_id=btc, status="failed", error_message="old error", started_at=now - timedelta(hours=40))
    await insert_log(config_id=btc, status="success", duration_seconds=2.0, records_collected=5)
    await insert_log(
        config_id=btc,
        status="partial",
        error_message="1h: timeout",
        error_cause="1h: binance did not answer in time",
        duration_seconds=4.0,
    )
    last = now - timedelta(seconds=5)
    await insert_log(config_id=btc, status="running", started_at=last)

    response = await client.get(f"{ADMIN_PATH}/stats/by-config?hours=24", headers=viewer_headers)

    assert response.status_code == 200
    by_id = {row["config_id"]: row for row in response.json()}
    assert set(by_id) == {btc, eth}
    row = by_id[btc]
    assert (row["symbol"], row["exchange"], row["enabled"]) == ("BTC/USDT", "binance", True)
    assert (row["runs"], row["successes"], row["failures"], row["partials"]) == (3, 1, 0, 1)
    assert row["success_rate"] == 50.0
    assert row["average_duration_seconds"] == 3.0
    assert row["records_collected"] == 15
    assert (row["last_run_at"], row["last_run_status"]) == (_iso(last), "running")
    assert (row["last_error"], row["last_error_cause"]) == ("1h: timeout", "1h: binance did not answer in time")
    assert by_id[eth] | {"config_id": 0} == {
        "config_id": 0,
        "symbol": "ETH/USDT",
        "exchange": "kraken",
        "enabled": False,
        "runs": 0,
        "successes": 0,
        "failures": 0,
        "partials": 0,
        "success_rate": None,
        "average_duration_seconds": None,
        "records_collected": 0,
        "last_run_at": None,
        "last_run_status": None,
        "last_error": None,
        "last_error_cause": None,
        "last_error_at": None,
    }
