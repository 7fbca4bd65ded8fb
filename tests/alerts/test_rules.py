"""Each rule fires on what the database says, and resolves when that changes, as the API shows it."""

from __future__ import annotations

from datetime import timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now, finish_run, make_config, read_alerts, subjects

Client = AsyncTestClient[Litestar]
DEAD_SCHEDULER = (
    "INSERT INTO scheduler_heartbeats (scheduler_id, backend, started_at, heartbeat_at, expires_at) "
    "VALUES ($1, $2, now() - make_interval(secs => $3 + 600), now() - make_interval(secs => $3), "
    "now() - make_interval(secs => $3) + interval '30 seconds')"
)
LIVE_SCHEDULER = (
    "INSERT INTO scheduler_heartbeats (scheduler_id, backend, started_at, heartbeat_at, expires_at) "
    "VALUES ($1, $2, now() - make_interval(secs => $3), now(), now() + interval '30 seconds')"
)


async def test_a_config_whose_last_runs_all_failed_fires_with_its_latest_error(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    await finish_run(pool, config_id, "success")
    await finish_run(pool, config_id, "failed", error="first failure")
    await finish_run(pool, config_id, "failed", error="binance GET klines: 503 Service Unavailable")

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"], alert["state"]) == ("config_failing", f"config:{config_id}", "firing")
    assert "the last 2 runs failed" in alert["summary"]
    assert "503 Service Unavailable" in alert["summary"]
    assert alert["details"]["config_id"] == config_id
    assert alert["resolved_at"] is None


async def test_fewer_failures_in_a_row_than_the_threshold_do_not_fire(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    await finish_run(pool, config_id, "failed")
    await finish_run(pool, config_id, "partial")
    await finish_run(pool, config_id, "failed")

    await evaluate_now(pool, alert_settings)

    assert (await read_alerts(alert_client, viewer))["firing"] == []


async def test_a_failing_config_resolves_after_a_successful_run(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    await finish_run(pool, config_id, "failed")
    await finish_run(pool, config_id, "failed")
    await evaluate_now(pool, alert_settings)

    await finish_run(pool, config_id, "success")
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    [resolved] = answer["recent"]
    assert (resolved["subject"], resolved["state"]) == (f"config:{config_id}", "resolved")
    assert resolved["resolved_at"] >= resolved["firing_since"]


async def test_a_disabled_config_does_not_alert(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool, enabled=False)
    await finish_run(pool, config_id, "failed")
    await finish_run(pool, config_id, "failed")

    await evaluate_now(pool, alert_settings)

    assert (await read_alerts(alert_client, viewer))["firing"] == []


async def test_runs_that_missed_their_slots_fire_and_resolve_once_out_of_the_window(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    run_id = await finish_run(
        pool, config_id, "success", missed_slots=4, scheduled_for=await pool.fetchval("SELECT now()")
    )
    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"]) == ("slots_missed", f"config:{config_id}")
    assert alert["details"]["missed_slots"] == 4
    assert "4 slots missed in the last 15 min" in alert["summary"]

    await pool.execute(
        "UPDATE job_execution_logs SET started_at = started_at - interval '16 minutes' WHERE id = $1", run_id
    )
    await evaluate_now(pool, alert_settings)
    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    assert subjects(answer["recent"]) == [("slots_missed", f"config:{config_id}")]


async def test_a_scheduler_that_stopped_beating_without_shutting_down_fires(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(DEAD_SCHEDULER, "worker.2:41:dead01", "arq", 180)
    await pool.execute(LIVE_SCHEDULER, "worker.1:40:live01", "arq", 3600)

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"]) == ("scheduler_silent", "scheduler:worker.2:41:dead01")
    assert "arq worker worker.2:41:dead01" in alert["summary"]
    assert "1 other scheduler alive" in alert["summary"]
    assert alert["details"]["schedulers_alive"] == 1


async def test_a_scheduler_silent_for_less_than_the_threshold_does_not_fire(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(DEAD_SCHEDULER, "web.1:7:slow01", "inprocess", 60)

    await evaluate_now(pool, alert_settings)

    assert (await read_alerts(alert_client, viewer))["firing"] == []


async def test_a_silent_scheduler_resolves_once_a_new_one_of_its_kind_started(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(DEAD_SCHEDULER, "worker.2:41:dead02", "arq", 300)
    await evaluate_now(pool, alert_settings)

    await pool.execute(LIVE_SCHEDULER, "worker.2:52:new002", "arq", 5)
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    assert subjects(answer["recent"]) == [("scheduler_silent", "scheduler:worker.2:41:dead02")]


async def test_no_scheduler_at_all_fires_only_after_the_silence_lasted_the_threshold(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await make_config(pool)
    await evaluate_now(pool, alert_settings)
    assert (await read_alerts(alert_client, viewer))["firing"] == []  # pending: no heartbeat seen yet

    await pool.execute(
        "UPDATE alerts SET condition_since = condition_since - $1::interval WHERE rule = 'scheduler_silent'",
        timedelta(seconds=alert_settings.alert_scheduler_silent_seconds),
    )
    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"]) == ("scheduler_silent", "scheduler")
    assert "No scheduler heartbeat for 2 min" in alert["summary"]


async def test_no_scheduler_and_no_enabled_config_is_no_alert(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await make_config(pool, enabled=False)

    await evaluate_now(pool, alert_settings)

    assert await pool.fetchval("SELECT count(*) FROM alerts") == 0
