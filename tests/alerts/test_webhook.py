"""Delivery to the webhook: the body chat services read, retries while the receiver is away, order,
messages the receiver refuses, and the URL kept secret."""

from __future__ import annotations

import asyncio
import logging

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now, failing_config, finish_run, read_alerts
from tests.alerts.receiver import Receiver
from tests.scheduling.conftest import eventually

Client = AsyncTestClient[Litestar]
DISCORD_CONTENT_LIMIT = 2000


async def wait_for(receiver: Receiver, count: int) -> None:
    async def enough() -> bool:
        return len(receiver.received) >= count

    await eventually(enough, timeout=15)


async def outbox(pool: Pool) -> list[dict[str, object]]:
    rows = await pool.fetch(
        "SELECT id, kind, attempts, delivered_at IS NOT NULL AS delivered, given_up_at IS NOT NULL AS given_up, "
        "last_error FROM alert_notifications ORDER BY id"
    )
    return [dict(row) for row in rows]


async def test_the_body_carries_slack_text_discord_content_and_the_alerts(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    config_id = await failing_config(pool)

    await evaluate_now(pool, alert_settings)
    await wait_for(receiver, 1)

    [body] = receiver.received
    assert set(body) == {"text", "content", "allowed_mentions", "event", "alerts", "alerts_total", "notification_id"}
    assert body["event"] == "firing"
    assert body["text"].startswith("[Altar Trader Hub] FIRING: Runs failing: A")
    assert (
        f"(config {config_id}): the last 2 runs failed; latest: NetworkError: binance GET klines: 503" in body["text"]
    )
    assert body["allowed_mentions"] == {"parse": []}
    assert body["notification_id"] == (await outbox(pool))[0]["id"]
    [alert] = body["alerts"]
    assert (alert["rule"], alert["subject"], alert["state"]) == ("config_failing", f"config:{config_id}", "firing")
    assert alert["last_notified_at"] is not None


async def test_markup_in_an_error_is_escaped_for_slack_and_discord(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    await failing_config(pool, error="<!channel> R&D says *no* @everyone")

    await evaluate_now(pool, alert_settings)
    await wait_for(receiver, 1)

    [body] = receiver.received
    assert "&lt;!channel&gt; R&amp;D says *no* @everyone" in body["text"]
    assert r"<!channel\> R&D says \*no\* @everyone" in body["content"]


async def test_many_alerts_at_once_stay_one_message_within_discords_limit(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    async with pool.acquire() as conn, conn.transaction():  # they all start failing at once
        for _ in range(120):
            await failing_config(conn)

    await evaluate_now(pool, alert_settings)
    await wait_for(receiver, 1)
    await asyncio.sleep(0.3)

    [body] = receiver.received
    assert body["alerts_total"] == 120
    assert len(body["alerts"]) == 50
    for field in ("text", "content"):
        assert len(body[field]) <= DISCORD_CONTENT_LIMIT
        assert body[field].startswith("[Altar Trader Hub] FIRING: 120 alerts\n• Runs failing: ")
        shown = body[field].count("\n• ")
        assert body[field].endswith(f"\n… and {120 - shown} more")


async def test_messages_wait_while_the_receiver_is_down_and_arrive_once_in_order_when_it_is_back(
    alert_client: Client,
    pool: Pool,
    alert_settings: Settings,
    receiver: Receiver,
    viewer: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await receiver.stop()
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await finish_run(pool, config_id, "success")
    await evaluate_now(pool, alert_settings)

    async def retried() -> bool:
        return (await outbox(pool))[0]["attempts"] >= 2

    await eventually(retried, timeout=15)
    delivery = (await read_alerts(alert_client, viewer))["delivery"]
    assert delivery["undelivered"] == 2
    assert "ClientConnectorError" in delivery["last_error"]

    await receiver.start()
    await wait_for(receiver, 2)
    await asyncio.sleep(0.5)

    assert receiver.events() == [("firing", [f"config:{config_id}"]), ("resolved", [f"config:{config_id}"])]
    assert [row["delivered"] for row in await outbox(pool)] == [True, True]
    delivery = (await read_alerts(alert_client, viewer))["delivery"]
    assert (delivery["undelivered"], delivery["last_error"]) == (0, None)
    assert delivery["last_delivered_at"] is not None
    assert caplog.text.count("alert webhook delivery failed") == 1
    assert caplog.text.count("alert webhook delivery works again") == 1


async def test_a_message_the_receiver_refuses_is_given_up_and_the_next_one_delivered(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer_status = 404
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)

    async def given_up() -> bool:
        return bool((await outbox(pool))[0]["given_up"])

    await eventually(given_up)
    receiver.answer_status = 200
    await finish_run(pool, config_id, "success")
    await evaluate_now(pool, alert_settings)
    await wait_for(receiver, 1)

    assert receiver.events() == [("resolved", [f"config:{config_id}"])]
    first = (await outbox(pool))[0]
    assert (first["attempts"], first["last_error"]) == (1, "the receiver answered HTTP 404")
    assert "gave up the firing message" in caplog.text


async def test_a_receiver_answering_429_gets_the_message_again_later(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    receiver.answer_status = 429
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)

    async def refused_twice() -> bool:
        return receiver.refused >= 2

    await eventually(refused_twice, timeout=15)
    receiver.answer_status = 200
    await wait_for(receiver, 1)

    assert receiver.events() == [("firing", [f"config:{config_id}"])]


async def test_the_webhook_url_never_shows_in_logs_errors_or_the_api(
    alert_client: Client,
    pool: Pool,
    alert_settings: Settings,
    receiver: Receiver,
    viewer: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await receiver.stop()
    await failing_config(pool)
    await evaluate_now(pool, alert_settings)

    async def failed_twice() -> bool:
        return (await outbox(pool))[0]["attempts"] >= 2

    await eventually(failed_twice, timeout=15)
    answer = (await alert_client.get("/api/v1/admin/data-collection/alerts", headers=viewer)).text

    secret = receiver.path.rsplit("/", 1)[1]
    stored = " ".join(str(row["last_error"]) for row in await outbox(pool))
    assert "alert webhook delivery failed (ClientConnectorError" in caplog.text
    for text in (caplog.text, stored, answer):
        assert secret not in text
    assert caplog.text.count("alert webhook delivery failed") == 1


async def test_a_message_queued_by_a_process_that_stopped_is_delivered_by_the_next_one(
    pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)  # queued here; no process of the deployment delivers it yet

    async with AsyncTestClient(app=create_app(alert_settings)):
        await wait_for(receiver, 1)

    assert receiver.events() == [("firing", [f"config:{config_id}"])]
    assert [row["delivered"] for row in await outbox(pool)] == [True]


async def test_a_message_undelivered_for_a_day_is_given_up(
    alert_client: Client, pool: Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    await receiver.stop()
    await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await pool.execute("UPDATE alert_notifications SET created_at = now() - interval '25 hours'")

    async def given_up() -> bool:
        return bool((await outbox(pool))[0]["given_up"])

    await eventually(given_up)
    assert "ClientConnectorError" in str((await outbox(pool))[0]["last_error"])
