"""GET /execution-logs/export.csv: RFC 4180 CSV of the filtered logs, streamed."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from backend.monitoring.repository import EXPORT_COLUMNS as CSV_COLUMNS
from tests.monitoring.conftest import ADMIN_PATH, InsertLog

Client = AsyncTestClient[Litestar]
EXPORT = f"{ADMIN_PATH}/execution-logs/export.csv"
NASTY = 'fetch_ohlcv failed: "BadSymbol", market BTC/XYZ,\r\nsecond line\nthird, line'


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_export_is_an_attachment_with_a_csv_filename(client: Client, viewer_headers: dict[str, str]) -> None:
    response = await client.get(EXPORT, headers=viewer_headers)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        r"attachment; filename=\"(execution-logs-\d{8}T\d{6}Z\.csv)\"; filename\*=UTF-8''\1", disposition
    ), disposition


async def test_empty_export_is_the_header_row_only(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(EXPORT, headers=admin_headers)

    assert response.text == ",".join(CSV_COLUMNS) + "\r\n"


async def test_error_messages_with_commas_quotes_and_newlines_survive(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="failed", error_message=NASTY, error_type="BadSymbol", metadata={"timeframes": ["1m"]})

    text = (await client.get(EXPORT, headers=admin_headers)).text
    header, row = _rows(text)

    record = dict(zip(header, row, strict=True))
    assert record["error_message"] == NASTY
    assert json.loads(record["metadata"]) == {"timeframes": ["1m"]}
    assert '"fetch_ohlcv failed: ""BadSymbol"", market BTC/XYZ,\r\nsecond line\nthird, line"' in text
    assert text.endswith("\r\n")


async def test_times_are_utc_iso_8601_and_nulls_are_empty(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    await insert_log(status="running")

    header, row = _rows((await client.get(EXPORT, headers=admin_headers)).text)

    record = dict(zip(header, row, strict=True))
    assert record["started_at"].endswith("Z")
    assert (record["finished_at"], record["duration_seconds"], record["status"]) == ("", "", "running")


async def test_export_applies_the_list_filters(
    client: Client, admin_headers: dict[str, str], insert_log: InsertLog
) -> None:
    failed = await insert_log(status="failed")
    await insert_log(status="success")

    rows = _rows((await client.get(f"{EXPORT}?status=failed", headers=admin_headers)).text)

    assert [row[0] for row in rows[1:]] == [str(failed)]


async def test_export_streams_every_row_newest_first_across_batches(
    client: Client, admin_headers: dict[str, str], pool: Pool
) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at, finished_at) "
        "SELECT 'collect_data_1', 'data_collection', 'success', t, t "
        "FROM generate_series(now() - interval '2500 seconds', now() - interval '1 second', interval '1 second') AS t"
    )

    rows = _rows((await client.get(EXPORT, headers=admin_headers)).text)[1:]

    assert len(rows) == 2500
    started = [row[CSV_COLUMNS.index("started_at")] for row in rows]
    assert started == sorted(started, reverse=True)


async def test_bad_export_filter_is_400_naming_it(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"{EXPORT}?start_date=soon", headers=admin_headers)

    assert response.status_code == 400
    assert "start_date" in response.text


@pytest.mark.parametrize("query", ["", "?status=success"])
async def test_an_export_of_several_batches_has_every_log_once_newest_first(
    client: Client, admin_headers: dict[str, str], pool: Pool, query: str
) -> None:
    # 4,500 logs: more than two batches, with runs that started in the same microsecond across them
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, status, started_at, finished_at) "
        "SELECT 'collect_data_1', 'data_collection', 'success', t, t FROM generate_series(1, 4500) AS n, "
        "LATERAL (SELECT timestamptz '2025-01-01 00:00:00.000001Z' + (n / 3) * interval '1.000001 seconds') AS s(t)"
    )

    text = (await client.get(EXPORT + query, headers=admin_headers)).text

    exported = [int(row[0]) for row in _rows(text)[1:]]
    expected = await pool.fetch("SELECT id FROM job_execution_logs ORDER BY started_at DESC, id DESC")
    assert exported == [row["id"] for row in expected]
