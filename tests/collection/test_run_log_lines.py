"""Log lines written while a run is performed carry its run id (LOG_FORMAT=json: ``run_id``)."""

from __future__ import annotations

import io
import json
import logging

from backend.collection.collector import Collector
from backend.log_config import ContextFilter, JsonFormatter


async def test_lines_logged_while_a_run_is_performed_carry_its_run_id(collector: Collector) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("backend.collection.collector")
    logger.addHandler(handler)
    try:
        await collector.execute_run(424242)  # no such run: the collector says so, and does nothing
    finally:
        logger.removeHandler(handler)

    [entry] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["run_id"] == 424242
    assert "424242" in entry["message"]
