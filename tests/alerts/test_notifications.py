"""Which changes become webhook messages: one per alert per change, grouped, reminded, never repeated."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.alerts.evaluation import evaluate_once
from backend.alerts.repository import EVALUATION_JOB
from backend.db.pool import Pool, create_pool
from backend.settings import Settings
from tests.alerts.conftest import MAKE_DUE, evaluate_now, failing_config, finish_run, make_config, read_alerts
from tests.alerts.receiver import Receiver
from tests.scheduling.conftest import eventually

Client = AsyncTestClient[Litestar]


async def received(receiver: Receiver, count: int) -> list[tuple[str, list[str]]]:
    await eventually(lambda: _at_least(receiver, count))
    await asyncio.sleep(0.3)  # room for a message that should not come
    return receiver.events()


async def _at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.received) >= count


async def test_alerts_that_fire_in_one_evaluation_arrive_as_one_message(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    async with pool.acquire() as conn, conn.transaction():  # they all start failing at once
        ids = [await failing_config(conn) for _ in range(3)]

    await evaluate_now(pool, alert_settings)

    assert await received(receiver, 1) == [("firing", [f"config:{config_id}" for config_id in ids])]
    [body] = receiver.received
    assert body["alerts_total"] == 3
    assert body["text"].startswith("[Altar Trader Hub] FIRING: 3 alerts")
    assert body["text"].count("\n• Runs failing: ") == 3


async def test_a_firing_alert_is_announced_once_however_often_it_is_evaluated(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    await failing_config(pool)

    for _ in range(3):
        await evaluate_now(pool, alert_settings)

    assert [event for event, _ in await received(receiver, 1)] == ["firing"]


async def test_a_reminder_comes_when_the_interval_passed_and_then_not_again_until_the_next(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await received(receiver, 1)

    await pool.execute(
        "UPDATE alerts SET last_notified_at = last_notified_at - make_interval(secs => $1)",
        alert_settings.alert_reminder_seconds,
    )
    await evaluate_now(pool, alert_settings)
    await evaluate_now(pool, alert_settings)

    assert await received(receiver, 2) == [("firing", [f"config:{config_id}"]), ("reminder", [f"config:{config_id}"])]
    assert receiver.received[1]["text"].startswith("[Altar Trader Hub] STILL FIRING: Runs failing: ")
    assert "(firing since " in receiver.received[1]["text"]


async def test_a_resolved_alert_is_announced_once_with_how_long_it_fired(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await finish_run(pool, config_id, "success")

    await evaluate_now(pool, alert_settings)
    await evaluate_now(pool, alert_settings)

    assert await received(receiver, 2) == [("firing", [f"config:{config_id}"]), ("resolved", [f"config:{config_id}"])]
    [alert] = receiver.received[1]["alerts"]
    assert alert["state"] == "resolved"
    assert alert["resolved_at"] is not None
    assert ", resolved after " in receiver.received[1]["text"]


async def test_a_pending_alert_that_clears_is_never_announced(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    config_id = await make_config(pool)  # enabled, and no scheduler: pending
    await evaluate_now(pool, alert_settings)
    await pool.execute("UPDATE data_collection_configs SET enabled = false WHERE id = $1", config_id)

    await evaluate_now(pool, alert_settings)

    await asyncio.sleep(1.5)  # a delivery round of the app
    assert receiver.received == []
    assert await pool.fetchval("SELECT count(*) FROM alerts") == 0


async def test_processes_evaluating_at_the_same_moment_change_and_announce_once(
    pool: Pool, alert_settings: Settings, database_url: str
) -> None:
    await failing_config(pool)
    pools = [await create_pool(database_url, min_size=2, max_size=2) for _ in range(2)]
    try:
        await pool.execute(MAKE_DUE, EVALUATION_JOB)
        evaluations = await asyncio.gather(
            *(evaluate_once(process_pool, settings=alert_settings) for process_pool in pools for _ in range(2))
        )
    finally:
        for process_pool in pools:
            await process_pool.close()

    assert sum(evaluation is not None for evaluation in evaluations) == 1
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'config_failing'") == 1
    assert await pool.fetchval("SELECT count(*) FROM alert_notifications") == 1


async def test_without_a_webhook_url_alerts_fire_and_nothing_is_queued(
    client: Client, viewer_headers: dict[str, str], pool: Pool, settings: Settings
) -> None:
    await failing_config(pool)
    await failing_config(pool)

    await evaluate_now(pool, replace(settings, alert_failed_runs=2))

    answer = await read_alerts(client, viewer_headers)
    assert answer["firing_count"] == 2
    assert [alert["last_notified_at"] for alert in answer["firing"]] == [None, None]
    assert answer["delivery"]["webhook_configured"] is False
    assert await pool.fetchval("SELECT count(*) FROM alert_notifications") == 0


async def test_many_series_going_stale_together_are_one_message(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    async with pool.acquire() as conn, conn.transaction():  # an exchange that stopped answering an hour ago
        for _ in range(30):
            await make_config(conn)
        await conn.execute(
            "UPDATE data_collection_configs SET timeframes = ARRAY['1m', '1h'], "
            "schedule_anchor_at = now() - interval '3 hours'"
        )

    await evaluate_now(pool, alert_settings)

    [(event, _)] = await received(receiver, 1)
    assert event == "firing"
    assert receiver.received[0]["alerts_total"] == 60
    assert receiver.received[0]["text"].startswith("[Altar Trader Hub] FIRING: 60 alerts\n• Series stale: ")
