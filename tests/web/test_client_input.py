"""No client input answers a 5xx: every malformed or out-of-range value is a 400 naming its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from tests.conftest import TEST_SECRET_KEY

Client = AsyncTestClient[Litestar]
ADMIN = "/api/v1/admin/data-collection"
CONFIGS = f"{ADMIN}/configs"
LOGS = f"{ADMIN}/execution-logs"
OHLCV = "/api/v1/market-data/ohlcv"
LOGIN = "/api/v1/auth/login"
TOO_BIG = "9223372036854775808"  # 2**63
NEW_CONFIG = {"symbol": "ETH/USDT", "timeframes": ["1m"], "interval_minutes": 10}


def _names_field(response: Any, key: str, source: str) -> bool:
    body = response.json()
    return any(item.get("key") == key and item.get("source") == source for item in body.get("extra", []))


@pytest.mark.parametrize("path", [CONFIGS, f"{CONFIGS}/1", f"{LOGS}/export.csv", f"{ADMIN}/stats"])
async def test_options_on_a_guarded_route_lists_its_methods_without_a_token(client: Client, path: str) -> None:
    response = await client.options(path)

    assert response.status_code == 204
    assert "OPTIONS" in response.headers["Allow"]


@pytest.mark.parametrize("path", [LOGIN, CONFIGS])
@pytest.mark.parametrize(
    "body",
    [b'{"email": "\xff\xfe@b.c", "password": "xxxxxxxx"}', b"[" * 100_000 + b"]" * 100_000, b"{\x00}"],
    ids=["invalid-utf8", "deep-nesting", "raw-nul"],
)
async def test_a_malformed_body_is_400(client: Client, admin_headers: dict[str, str], path: str, body: bytes) -> None:
    response = await client.post(path, content=body, headers=admin_headers)

    assert response.status_code == 400
    assert response.json()["status_code"] == 400


async def test_nul_in_the_login_email_is_400_naming_the_field(client: Client) -> None:
    response = await client.post(LOGIN, content=b'{"email":"a\\u0000@b.c","password":"xxxxxxxx"}')

    assert response.status_code == 400
    assert _names_field(response, "email", "body")


@pytest.mark.parametrize(
    ("method", "path", "key", "source"),
    [
        ("GET", f"{CONFIGS}/{TOO_BIG}", "config_id", "path"),
        ("PUT", f"{CONFIGS}/{TOO_BIG}", "config_id", "path"),
        ("GET", f"{LOGS}/{TOO_BIG}", "log_id", "path"),
        ("GET", f"{CONFIGS}?skip={TOO_BIG}", "skip", "query"),
        ("GET", f"{LOGS}?skip={TOO_BIG}", "skip", "query"),
        ("GET", f"{LOGS}?config_id={TOO_BIG}", "config_id", "query"),
        ("GET", f"{ADMIN}/stats/timeseries?config_id={TOO_BIG}", "config_id", "query"),
    ],
)
async def test_an_integer_beyond_64_bits_is_400_naming_it(
    client: Client, admin_headers: dict[str, str], method: str, path: str, key: str, source: str
) -> None:
    body = {"interval_minutes": 5} if method == "PUT" else None
    response = await client.request(method, path, headers=admin_headers, json=body)

    assert response.status_code == 400
    assert _names_field(response, key, source)


@pytest.mark.parametrize(
    "path", [f"{CONFIGS}/9223372036854775807", f"{LOGS}/9223372036854775807", f"{CONFIGS}/9223372036854775807/enable"]
)
async def test_the_largest_bigint_is_a_valid_id(client: Client, admin_headers: dict[str, str], path: str) -> None:
    method = "POST" if path.endswith("/enable") else "GET"
    response = await client.request(method, path, headers=admin_headers)

    assert response.status_code == 404


async def test_a_bulk_id_beyond_64_bits_is_400_naming_it(client: Client, admin_headers: dict[str, str]) -> None:
    body = b'{"action": "enable", "ids": [1, ' + TOO_BIG.encode() + b"]}"
    response = await client.post(f"{CONFIGS}/bulk", content=body, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, "ids[1]", "body")


async def test_a_token_whose_subject_is_beyond_64_bits_is_401(client: Client) -> None:
    forged = Token(sub=TOO_BIG, exp=datetime.now(UTC) + timedelta(minutes=5)).encode(TEST_SECRET_KEY, "HS256")

    response = await client.get(CONFIGS, headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{LOGS}?job_name=%00", "job_name"),
        (f"{LOGS}?symbol=BTC%00", "symbol"),
        (f"{LOGS}/export.csv?job_name=%00", "job_name"),
        (f"{ADMIN}/stats?job_type=%00", "job_type"),
        (f"{OHLCV}?symbol=BTC/USDT%00&timeframe=1m", "symbol"),
        (f"{OHLCV}?symbol=BTC/USDT&exchange=%00&timeframe=1m", "exchange"),
        (f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&format=csv&exchange=bin%00ance", "exchange"),
        ("/api/v1/market-data/coverage?symbol=BTC/USDT%00", "symbol"),
    ],
)
async def test_nul_in_a_query_parameter_is_400_naming_it(
    client: Client, admin_headers: dict[str, str], path: str, key: str
) -> None:
    response = await client.get(path, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, key, "query")


async def test_an_end_date_on_the_last_representable_day_means_no_upper_bound(
    client: Client, admin_headers: dict[str, str]
) -> None:
    response = await client.get(f"{LOGS}?end_date=9999-12-31", headers=admin_headers)

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{LOGS}?start_date=yesterday", "start_date"),
        (f"{LOGS}?start_date=0.0", "start_date"),
        (f"{LOGS}/export.csv?end_date=2024-W01-1", "end_date"),
        (f"{LOGS}?end_date=2024-02-30", "end_date"),
        (f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&start=0.0", "start"),
        (f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&end=1717200000", "end"),
        (f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&start=2024-05-01T25:00:00Z", "start"),
    ],
)
async def test_a_time_that_is_not_iso_8601_is_400_naming_it(
    client: Client, admin_headers: dict[str, str], path: str, key: str
) -> None:
    response = await client.get(path, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, key, "query")


async def _a_log(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, started_at, finished_at) "
        "VALUES ('collect_data_1', 'data_collection', 'ETH/USDT', 'binance', 'success', "
        "'2024-05-01T12:00:00Z', '2024-05-01T12:00:03Z')"
    )


@pytest.mark.parametrize(
    "query",
    ["start_date=0001-01-01T00:00:00%2B01:00", "end_date=9999-12-31T23:00:00-14:00", "start_date=0001-01-01"],
)
async def test_a_time_outside_what_can_be_stored_is_the_first_or_last_instant(
    client: Client, admin_headers: dict[str, str], pool: Pool, query: str
) -> None:
    await _a_log(pool)

    response = await client.get(f"{LOGS}?{query}", headers=admin_headers)

    assert response.status_code == 200
    assert len(response.json()) == 1


@pytest.mark.parametrize(
    "query", ["start=9999-12-31T23:59:59-14:00", "end=0001-01-01T00:00:00%2B14:00"], ids=["start", "end"]
)
async def test_an_ohlcv_range_beyond_what_can_be_stored_is_empty(
    client: Client, admin_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&{query}", headers=admin_headers)

    assert response.status_code == 200
    assert response.json() == []


async def test_logs_from_a_start_after_the_end_are_none(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    await _a_log(pool)

    response = await client.get(f"{LOGS}?start_date=2024-05-02&end_date=2024-05-01", headers=admin_headers)

    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "0"


async def test_candles_from_a_start_at_or_after_the_end_are_none(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(
        f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&start=2024-05-02T00:00:00Z&end=2024-05-01T00:00:00Z",
        headers=admin_headers,
    )

    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("path", "key"),
    [
        (f"{CONFIGS}?enabled=null", "enabled"),
        (f"{CONFIGS}?enabled=1", "enabled"),
        (f"{CONFIGS}?enabled=true&enabled=false", "enabled"),
        (f"{LOGS}?status=null", "status"),
        (f"{LOGS}?config_id=null", "config_id"),
        (f"{ADMIN}/stats/timeseries?config_id=null", "config_id"),
        (f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&format=null", "format"),
    ],
)
async def test_a_query_value_its_schema_refuses_is_400_naming_it(
    client: Client, admin_headers: dict[str, str], path: str, key: str
) -> None:
    response = await client.get(path, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, key, "query")


@pytest.mark.parametrize(
    ("symbol", "ascii_name", "exact_name"),
    [
        ("%E2%82%AC/USDT", "binance__-USDT_1m.csv", "binance_%E2%82%AC-USDT_1m.csv"),
        ("A%22B/USDT", "binance_A_B-USDT_1m.csv", "binance_A%22B-USDT_1m.csv"),
        ("A%0D%0AB/USDT", "binance_A__B-USDT_1m.csv", "binance_AB-USDT_1m.csv"),
    ],
    ids=["non-latin-1", "quote", "crlf"],
)
async def test_the_ohlcv_csv_names_its_file_safely_whatever_the_symbol(
    client: Client, admin_headers: dict[str, str], symbol: str, ascii_name: str, exact_name: str
) -> None:
    response = await client.get(f"{OHLCV}?symbol={symbol}&timeframe=1m&format=csv", headers=admin_headers)

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{exact_name}"
    )


async def test_the_ohlcv_csv_says_its_charset_once(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"{OHLCV}?symbol=BTC/USDT&timeframe=1m&format=csv", headers=admin_headers)

    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval_minutes", "10"),
        ("enabled", "true"),
        ("backfill_days", "7"),
        ("description", "a\x00b"),
        ("symbol", "BTC/USDT\n"),
    ],
    ids=["number-as-string", "boolean-as-string", "days-as-string", "nul-in-description", "newline-after-symbol"],
)
async def test_a_malformed_config_field_is_400_naming_it_and_stores_nothing(
    client: Client, admin_headers: dict[str, str], pool: Pool, field: str, value: str
) -> None:
    response = await client.post(CONFIGS, json={**NEW_CONFIG, field: value}, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, field, "body")
    assert await pool.fetchval("SELECT count(*) FROM data_collection_configs") == 0


async def test_a_string_typed_number_in_an_update_is_400(client: Client, admin_headers: dict[str, str]) -> None:
    created = (await client.post(CONFIGS, json=NEW_CONFIG, headers=admin_headers)).json()

    response = await client.put(f"{CONFIGS}/{created['id']}", json={"interval_minutes": "5"}, headers=admin_headers)

    assert response.status_code == 400
    assert _names_field(response, "interval_minutes", "body")


@pytest.mark.parametrize(
    ("with_empty", "without"),
    [
        (f"{CONFIGS}?enabled=&exchange=&skip=0&limit=100", f"{CONFIGS}?skip=0&limit=100"),
        (
            f"{LOGS}?job_name=&job_type=&symbol=&status=&start_date=&end_date=&config_id=&exchange=&skip=0&limit=100",
            f"{LOGS}?skip=0&limit=100",
        ),
        (f"{ADMIN}/stats?job_type=&hours=24", f"{ADMIN}/stats?hours=24"),
        (
            f"{ADMIN}/stats/timeseries?job_type=&config_id=&hours=2&bucket=1h",
            f"{ADMIN}/stats/timeseries?hours=2&bucket=1h",
        ),
    ],
    ids=["configs", "execution-logs", "stats", "timeseries"],
)
async def test_an_empty_query_parameter_means_no_filter(
    client: Client, admin_headers: dict[str, str], pool: Pool, with_empty: str, without: str
) -> None:
    await client.post(CONFIGS, json=NEW_CONFIG, headers=admin_headers)
    await client.post(CONFIGS, json={**NEW_CONFIG, "symbol": "BTC/USDT", "enabled": False}, headers=admin_headers)
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, finished_at) "
        "VALUES ('collect_data_1', 'data_collection', 'ETH/USDT', 'binance', 'success', now())"
    )

    empty = await client.get(with_empty, headers=admin_headers)
    absent = await client.get(without, headers=admin_headers)

    assert empty.status_code == 200
    assert empty.json() == absent.json()
    assert empty.json() not in ([], {})


@pytest.mark.parametrize(
    "moment",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00%2B02:00",
        "2024-05-01T14:00:00 02:00",
        "2024-05-01t12:00:00z",
        "2024-05-01T12:00",
        "2024-05-01T12:00:00.0000001",
        "2024-05-01T12:00Z",
    ],
)
async def test_every_spelling_of_an_instant_finds_the_log_started_then(
    client: Client, admin_headers: dict[str, str], pool: Pool, moment: str
) -> None:
    await _a_log(pool)

    response = await client.get(f"{LOGS}?start_date={moment}&end_date={moment}", headers=admin_headers)

    assert response.status_code == 200
    assert len(response.json()) == 1
