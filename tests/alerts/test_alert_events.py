"""The live event ``alerts_changed``: sent when an evaluation fires or resolves alerts, to every socket."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now, failing_config, finish_run

EVENTS = "/api/v1/admin/data-collection/events"


async def next_alerts_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next ``alerts_changed`` message (run events of the test's own writes come first)."""
    while True:
        message: dict[str, Any] = json.loads((await ws.receive(timeout=10)).data)
        if message["type"] == "alerts_changed":
            return message


async def test_alerts_that_fire_and_resolve_are_pushed_to_the_events_socket(
    served_url: str, viewer_headers: dict[str, str], pool: Pool, settings: Settings
) -> None:
    token = viewer_headers["Authorization"].removeprefix("Bearer ")
    async with aiohttp.ClientSession() as session, session.ws_connect(f"ws{served_url[4:]}{EVENTS}") as ws:
        await ws.send_str(token)
        assert json.loads((await ws.receive(timeout=10)).data) == {"type": "ready"}
        config_id = await failing_config(pool)
        await finish_run(pool, config_id, "failed")  # the third in a row: the default threshold

        await evaluate_now(pool, settings)
        fired = await next_alerts_event(ws)
        await finish_run(pool, config_id, "success")
        await evaluate_now(pool, settings)
        resolved = await next_alerts_event(ws)

    assert fired == {"type": "alerts_changed", "firing": 1, "fired": 1, "resolved": 0}
    assert resolved == {"type": "alerts_changed", "firing": 0, "fired": 0, "resolved": 1}
