"""One log format: text or one JSON object per line, with request and run ids, tokens redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from backend.log_config import REQUEST_ID, ContextFilter, JsonFormatter, TextFormatter, redact


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes, as LOG_FORMAT=json writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_the_request_id(json_lines: io.StringIO) -> None:
    token = REQUEST_ID.set("req-1")
    try:
        logging.getLogger("backend.example").info("hello %s", "world")
    finally:
        REQUEST_ID.reset(token)

    [entry] = _entries(json_lines)
    assert set(entry) == {"time", "level", "logger", "message", "request_id"}
    assert (entry["level"], entry["logger"], entry["message"], entry["request_id"]) == (
        "INFO",
        "backend.example",
        "hello world",
        "req-1",
    )


def test_a_traceback_stays_inside_its_json_line(json_lines: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("backend.example").exception("failed")

    [entry] = _entries(json_lines)
    assert "RuntimeError: boom" in str(entry["exception"])


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1:5000 - "WebSocket /api/v1/admin/data-collection/events?token=eyJ.secret.sig" [accepted]',
        '127.0.0.1:5000 - "GET /x?a=1&token=eyJ.secret.sig&b=2 HTTP/1.1" 200',
    ],
)
def test_a_token_in_a_query_string_is_redacted(line: str) -> None:
    assert "eyJ.secret.sig" not in redact(line)
    assert "token=[redacted]" in redact(line)


def test_text_lines_name_the_logger_and_the_run() -> None:
    record = logging.LogRecord("backend.x", logging.INFO, __file__, 1, "stored %d candles", (5,), None)
    record.run_id = 7

    line = TextFormatter().format(record)

    assert line.endswith("INFO backend.x: stored 5 candles [run_id=7]")
