"""Execution logs as RFC 4180 CSV, streamed from a server-side cursor in batches (constant memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

import msgspec

from backend.db.pool import Pool
from backend.monitoring import repository
from backend.monitoring.schemas import JobExecutionLog, LogFilters

CSV_COLUMNS = (
    "id",
    "job_name",
    "job_type",
    "config_id",
    "symbol",
    "exchange",
    "timeframe",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "duration_seconds",
    "records_collected",
    "scheduled_for",
    "missed_slots",
    "error_type",
    "error_message",
    "metadata",
)


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return msgspec.json.encode(value).decode()
    return value


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    """Rows as CSV with CRLF line ends; fields with a comma, quote or line break are quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _fields(log: JobExecutionLog) -> list[object]:
    return [_cell(getattr(log, name)) for name in CSV_COLUMNS]


def export_filename(now: datetime) -> str:
    return f"execution-logs-{now.strftime('%Y%m%dT%H%M%SZ')}.csv"


async def export_logs_csv(pool: Pool, *, filters: LogFilters) -> AsyncIterator[bytes]:
    """The header, then the filtered logs newest first, one chunk per batch of the cursor."""
    yield _csv([CSV_COLUMNS])
    async for batch in repository.stream_logs(pool, filters=filters):
        yield _csv(_fields(log) for log in batch)
