"""GET /execution-logs and /execution-logs/{id}: filters, order, paging, totals, bad values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.monitoring.conftest import ADMIN_PATH, InsertConfig, InsertLog

LOGS = f"{ADMIN_PATH}/execution-logs"
Client = AsyncTestClient[Litestar]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def _ids(client: Client, headers: dict[str, str], query: str = "") -> list[int]:
    response = await client.get(f"{LOGS}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [log["id"] for log in response.json()]


async def test_logs_are_newest_first_with_every_field(
    client: Client, viewer_headers: dict[str, str], insert_log: InsertLog
) -> None:
    older = await insert_log(started_at=T0)
    newer = await insert_log(
        started_at=T0 + timedelta(minutes=5),
        metadata={"timeframes_collected": 1, "timeframes_failed": 0, "timeframes": ["1m"]},
    )

    response = await client.get(LOGS, headers=viewer_headers)

    assert response.status_code == 200
    body = response.json()
    assert [log["id"] for log in body] == [newer, older]
    assert body[0]["started_at"] == "2024-05-01T12:05:00Z"
    assert body[0]["metadata"] == {"timeframes_collected": 1, "timeframes_failed": 0, "timeframes": ["1m"]}
    fields = {"id", "job_name", "job_type", "symbol", "exchange", "timeframe", "started_at", "finished_at"}
    fields |= {"duration_seconds", "status", "records_collected", "error_message", "error_type", "metadata"}
    assert fields <= set(body[0])


async def test_same_start_is_ordered_by_id_descending(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    first = await insert_log(started_at=T0)
    second = await insert_log(started_at=T0)

    assert await _ids(client, admin_headers) == [second, first]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?job_name=collect_data_7", ["eth"]),
        ("?job_type=cleanup", ["cleanup"]),
        ("?symbol=ETH/USDT", ["eth"]),
        ("?symbol=eth/usdt", ["eth"]),
        ("?status=failed", ["eth"]),
        ("?status=partial", ["partial"]),
        ("?status=running", ["running"]),
        ("?exchange=kraken", ["partial"]),
        ("?exchange=KRAKEN", ["partial"]),
        ("?job_type=data_collection&status=success", ["btc"]),
        ("?symbol=BTC/USDT&status=failed", []),
    ],
)
async def test_each_filter_narrows_the_list(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, query: str, expected: list[str]
) -> None:
    ids = {
        "btc": await insert_log(started_at=T0),
        "eth": await insert_log(started_at=T0, symbol="ETH/USDT", job_name="collect_data_7", status="failed"),
        "partial": await insert_log(started_at=T0, exchange="kraken", symbol="XRP/USD", status="partial"),
        "running": await insert_log(started_at=T0, symbol="SOL/USDT", status="running"),
        "cleanup": await insert_log(
            started_at=T0, job_type="cleanup", job_name="cleanup", symbol=None, trigger="system"
        ),
    }

    assert sorted(await _ids(client, admin_headers, query)) == sorted(ids[name] for name in expected)


async def test_config_id_filter(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog, insert_config: InsertConfig
) -> None:
    btc = await insert_config("BTC/USDT")
    eth = await insert_config("ETH/USDT")
    mine = await insert_log(config_id=btc)
    await insert_log(config_id=eth)

    assert await _ids(client, admin_headers, f"?config_id={btc}") == [mine]


async def test_date_range_is_inclusive_and_zone_less_dates_are_utc(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    before = await insert_log(started_at=T0 - timedelta(seconds=1))
    at_start = await insert_log(started_at=T0)
    at_end = await insert_log(started_at=T0 + timedelta(hours=1))
    await insert_log(started_at=T0 + timedelta(hours=1, microseconds=1))

    assert await _ids(client, admin_headers, "?start_date=2024-05-01T12:00:00&end_date=2024-05-01T13:00:00") == [
        at_end,
        at_start,
    ]
    assert await _ids(client, admin_headers, "?end_date=2024-05-01T11:59:59Z") == [before]


async def test_dates_with_an_offset_are_converted_to_utc(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(started_at=T0 - timedelta(minutes=1))
    at_noon_utc = await insert_log(started_at=T0)

    # 14:00 at +02:00 is 12:00 UTC; "+" must be percent-encoded in a URL ...
    assert await _ids(client, admin_headers, "?start_date=2024-05-01T14:00:00%2B02:00") == [at_noon_utc]
    # ... and when a client forgets, it arrives as a space: still understood
    assert await _ids(client, admin_headers, "?start_date=2024-05-01T14:00:00+02:00") == [at_noon_utc]


async def test_date_only_end_covers_that_whole_day(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    late = await insert_log(started_at=datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC))
    await insert_log(started_at=datetime(2024, 5, 2, tzinfo=UTC))

    assert await _ids(client, admin_headers, "?start_date=2024-05-01&end_date=2024-05-01") == [late]


async def test_skip_and_limit_page_and_total_count_is_the_filtered_total(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    ids = [await insert_log(started_at=T0 + timedelta(minutes=i), status="failed") for i in range(5)]
    await insert_log(started_at=T0, status="success")

    response = await client.get(f"{LOGS}?status=failed&skip=1&limit=2", headers=admin_headers)

    assert [log["id"] for log in response.json()] == [ids[3], ids[2]]
    assert response.headers["X-Total-Count"] == "5"


async def test_empty_database_lists_nothing_with_a_zero_total(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(LOGS, headers=admin_headers)

    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("?limit=1001", "limit"),
        ("?limit=0", "limit"),
        ("?skip=-1", "skip"),
        ("?status=done", "status"),
        ("?config_id=0", "config_id"),
        ("?config_id=abc", "config_id"),
        ("?start_date=yesterday", "start_date"),
        ("?end_date=2024-13-01", "end_date"),
    ],
)
async def test_bad_filter_values_are_400_naming_the_parameter(
    client: Client, admin_headers: dict[str, str], query: str, name: str
) -> None:
    response = await client.get(f"{LOGS}{query}", headers=admin_headers)

    assert response.status_code == 400
    assert name in response.text


async def test_limit_of_1000_is_allowed(client: Client, admin_headers: dict[str, str]) -> None:
    assert (await client.get(f"{LOGS}?limit=1000", headers=admin_headers)).status_code == 200


async def test_one_log_by_id(client: Client, viewer_headers: dict[str, str], insert_log: InsertLog) -> None:
    log_id = await insert_log(status="failed", error_message="BadSymbol: no such market", error_type="BadSymbol")

    response = await client.get(f"{LOGS}/{log_id}", headers=viewer_headers)

    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert (body["id"], body["status"], body["error_type"]) == (log_id, "failed", "BadSymbol")


async def test_unknown_log_is_404_naming_it(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"{LOGS}/424242", headers=admin_headers)

    assert response.status_code == 404
    assert "424242" in response.json()["detail"]


async def test_logs_need_a_token(client: Client) -> None:
    assert (await client.get(LOGS)).status_code == 401
