"""Execution logs as RFC 4180 CSV, streamed batch by batch (constant memory, no connection held between)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from backend.db.pool import Pool
from backend.monitoring import repository
from backend.monitoring.schemas import LogFilters


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    """Rows as CSV with CRLF line ends; fields with a comma, quote or line break are quoted, None is empty."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return buffer.getvalue().encode()


def export_filename(now: datetime) -> str:
    return f"execution-logs-{now.strftime('%Y%m%dT%H%M%SZ')}.csv"


async def export_logs_csv(pool: Pool, *, filters: LogFilters) -> AsyncIterator[bytes]:
    """The header, then the filtered logs newest first, one chunk per batch of the cursor."""
    yield _csv([repository.EXPORT_COLUMNS])
    async for batch in repository.stream_export_rows(pool, filters=filters):
        yield _csv(batch)
