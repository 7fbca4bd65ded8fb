"""Execution logs: filters, pages from X-Total-Count, a run's detail, CSV export with the same filters."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from playwright.async_api import Page, expect

from tests.dashboard.conftest import ADMIN_PATH, Served, log_in

NO_VALUE = "\N{EN DASH}"  # what an empty cell shows
INSERT_LOG = """
INSERT INTO job_execution_logs
    (job_name, job_type, symbol, exchange, status, trigger, started_at, finished_at, duration_seconds,
     records_collected, error_type, error_message, metadata)
VALUES ('collect_data_0', 'data_collection', $1, 'binance', $2, 'schedule',
        $3::timestamptz, $3::timestamptz + interval '2 seconds', 2.0, $4, $5, $6, $7::jsonb)
RETURNING id
"""


async def insert_logs(
    served: Served, symbol: str, statuses: list[str], started_at: datetime | None = None
) -> list[int]:
    conn = await asyncpg.connect(served.database_url)
    try:
        return [
            await conn.fetchval(
                INSERT_LOG,
                symbol,
                status,
                started_at or datetime.now(UTC),
                0 if status == "failed" else 60,
                "RequestTimeout" if status == "failed" else None,
                "timed out" if status == "failed" else None,
                None,
            )
            for status in statuses
        ]
    finally:
        await conn.close()


def body_rows(page: Page) -> Any:
    return page.get_by_role("region", name="Execution logs").locator("tbody tr")


async def filter_logs(page: Page, **fields: str) -> None:
    labels = {"symbol": "Symbol", "exchange": "Exchange", "start_date": "From (UTC)", "end_date": "To (UTC)"}
    for name, value in fields.items():
        if name in ("status", "job_type"):
            await page.get_by_label("Status" if name == "status" else "Job type").select_option(value)
        else:
            await page.get_by_label(labels[name]).fill(value)
    await page.get_by_role("button", name="Apply filters").click()


async def test_filters_narrow_the_logs_and_the_total_counts_them(page: Page, served: Served) -> None:
    await insert_logs(served, "FLT/USDT", ["success"] * 5 + ["failed"] * 3)
    await insert_logs(served, "OTH/USDT", ["failed"] * 2)
    await log_in(page, view="Execution logs")

    await filter_logs(page, symbol="FLT/USDT", status="failed", job_type="data_collection", exchange="binance")

    await expect(page.get_by_text("3 runs · page 1 of 1")).to_be_visible()
    await expect(body_rows(page)).to_have_count(3)
    for index in range(3):
        await expect(body_rows(page).nth(index)).to_contain_text(re.compile(r"FLT/USDT.*binance.*failed"))
    await page.reload()  # the filters live in the address
    await expect(page.get_by_text("3 runs · page 1 of 1")).to_be_visible()
    await expect(page.get_by_label("Status")).to_have_value("failed")


async def test_a_date_range_keeps_the_runs_that_started_within_it(page: Page, served: Served) -> None:
    for day in (1, 4, 5, 6):
        await insert_logs(served, "DTR/USDT", ["success"], started_at=datetime(2024, 3, day, 12, tzinfo=UTC))
    await log_in(page, view="Execution logs")

    await filter_logs(page, symbol="DTR/USDT", start_date="2024-03-04", end_date="2024-03-05")

    await expect(page.get_by_text("2 runs · page 1 of 1")).to_be_visible()
    await expect(body_rows(page).first).to_contain_text("2024-03-05 12:00 UTC")
    await expect(body_rows(page).last).to_contain_text("2024-03-04 12:00 UTC")


async def test_a_total_past_the_exact_count_reads_as_an_estimate(page: Page, served: Served) -> None:
    conn = await asyncpg.connect(served.database_url)
    try:
        await conn.execute(
            "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, started_at, finished_at, "
            "duration_seconds) SELECT 'collect_data_0', 'data_collection', 'EST/USDT', 'binance', 'success', "
            "now() - n * interval '1 second', now(), 1 FROM generate_series(1, 10050) AS n"
        )
    finally:
        await conn.close()
    await log_in(page, view="Execution logs")
    await filter_logs(page, symbol="EST/USDT")

    await expect(page.get_by_text(re.compile(r"^about [\d,]+ runs · page 1 of \d+$"))).to_be_visible()


async def test_pages_follow_the_total_the_api_counts(page: Page, served: Served) -> None:
    ids = await insert_logs(served, "PGN/USDT", ["success"] * 120)
    newest_first = sorted(ids, reverse=True)  # same start time: the newest id first
    await log_in(page, view="Execution logs")
    await filter_logs(page, symbol="PGN/USDT")

    await expect(page.get_by_text("120 runs · page 1 of 3")).to_be_visible()
    await expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    await page.get_by_role("button", name="Next page").click()
    await expect(page.get_by_text("120 runs · page 2 of 3")).to_be_visible()
    await expect(body_rows(page).first).to_contain_text(f"#{newest_first[50]}")
    await page.get_by_role("button", name="Next page").click()

    await expect(page.get_by_text("120 runs · page 3 of 3")).to_be_visible()
    await expect(body_rows(page)).to_have_count(20)
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()


async def test_a_row_opens_the_runs_detail_with_each_timeframe(page: Page, served: Served) -> None:
    metadata = {
        "timeframes_collected": 1,
        "timeframes_failed": 1,
        "timeframes": ["1h", "4h"],
        "by_timeframe": {
            "1h": {
                "records": 24,
                "first_candle": "2025-01-14T12:00:00+00:00",
                "last_candle": "2025-01-15T11:00:00+00:00",
                "pages": 1,
                "retries": 2,
                "holes_repaired": 1,
                "duration_seconds": 0.8,
                "error_type": None,
                "error": None,
            },
            "4h": {
                "records": 0,
                "first_candle": None,
                "last_candle": None,
                "pages": 0,
                "retries": 4,
                "holes_repaired": 0,
                "duration_seconds": 20.5,
                "error_type": "RequestTimeout",
                "error": "timed out",
            },
        },
    }
    conn = await asyncpg.connect(served.database_url)
    try:
        log_id = await conn.fetchval(
            INSERT_LOG,
            "DTL/USDT",
            "partial",
            datetime.now(UTC),
            24,
            "RequestTimeout",
            "4h: timed out",
            json.dumps(metadata),
        )
    finally:
        await conn.close()
    await log_in(page, view="Execution logs")
    await filter_logs(page, symbol="DTL/USDT")

    await page.get_by_role("link", name=f"#{log_id}", exact=True).click()

    await expect(page.get_by_role("heading", name=f"Run #{log_id}: DTL/USDT on binance")).to_be_visible()
    timeframes = page.get_by_role("region", name="Per timeframe").locator("tbody tr")
    # timeframe, records, first and last candle, pages, retries, holes repaired, duration, error
    await expect(timeframes.nth(0).get_by_role("cell")).to_have_text(
        ["1h", "24", "2025-01-14 12:00 UTC", "2025-01-15 11:00 UTC", "1", "2", "1", "0.80 s", NO_VALUE]
    )
    await expect(timeframes.nth(1)).to_contain_text("RequestTimeout: timed out")
    await expect(page.get_by_role("region", name="Error")).to_contain_text("4h: RequestTimeout: timed out")


async def test_export_csv_downloads_the_logs_the_filters_select(page: Page, served: Served, tmp_path: Path) -> None:
    await insert_logs(served, "CSV/USDT", ["success"] * 2 + ["failed"] * 3)
    await log_in(page, view="Execution logs")
    await filter_logs(page, symbol="CSV/USDT", status="failed")
    await expect(page.get_by_text("3 runs · page 1 of 1")).to_be_visible()

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export CSV").click()
    download = await download_info.value
    await download.save_as(tmp_path / download.suggested_filename)

    assert re.fullmatch(r"execution-logs-.+\.csv", download.suggested_filename)
    rows = list(csv.DictReader(io.StringIO((tmp_path / download.suggested_filename).read_text())))
    assert [(row["symbol"], row["status"]) for row in rows] == [("CSV/USDT", "failed")] * 3
    async with served.api(await served.token()) as client:
        exported = await client.get(
            f"{ADMIN_PATH}/execution-logs/export.csv", params={"symbol": "CSV/USDT", "status": "failed"}
        )
    assert list(csv.DictReader(io.StringIO(exported.text))) == rows
    await expect(page.get_by_text(f"Downloaded {download.suggested_filename}")).to_be_visible()
