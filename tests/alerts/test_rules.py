"""Each rule fires on what the database says, and resolves when that changes, as the API shows it."""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.conftest import evaluate_now, finish_run, make_config, read_alerts, subjects

Client = AsyncTestClient[Litestar]
HOUR = timedelta(hours=1)
# a pause of one process, held since $3 seconds ago, for an hour more
PAUSE = (
    "INSERT INTO exchange_pauses (exchange, process, state, since, until, reason) "
    "VALUES ($1, 'web.1:7:abc123', $2, now() - make_interval(secs => $3), now() + interval '1 hour', $4)"
)
DEAD_SCHEDULER = (
    "INSERT INTO scheduler_heartbeats (scheduler_id, backend, started_at, heartbeat_at, expires_at) "
    "VALUES ($1, $2, now() - make_interval(secs => $3 + 600), now() - make_interval(secs => $3), "
    "now() - make_interval(secs => $3) + interval '30 seconds')"
)
LIVE_SCHEDULER = (
    "INSERT INTO scheduler_heartbeats (scheduler_id, backend, started_at, heartbeat_at, expires_at) "
    "VALUES ($1, $2, now() - make_interval(secs => $3), now(), now() + interval '30 seconds')"
)


async def store_minutes(pool: Pool, symbol: str, first: datetime, end: datetime) -> None:
    """1m candles of ``symbol`` on binance opened from ``first`` up to ``end`` (excluded)."""
    opens = [first + timedelta(minutes=m) for m in range(int((end - first) / timedelta(minutes=1)))]
    rows = [(moment, 100.0, 101.0, 99.0, 100.5, 2.0) for moment in opens]
    await store_candles(pool, exchange="binance", symbol=symbol, timeframe="1m", rows=rows)


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


async def test_a_failing_configs_alert_quotes_the_latest_cause_in_a_few_words(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    chain = "1h: binance GET https://api.binance.com/api/v3/exchangeInfo: ClientConnectorDNSError: Cannot connect"
    for _ in range(2):
        await finish_run(
            pool, config_id, "failed", error=chain, cause="cannot reach api.binance.com: name not resolved"
        )

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert alert["summary"].endswith("the last 2 runs failed; latest: cannot reach api.binance.com: name not resolved")
    assert alert["details"]["error_message"] == chain


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


async def test_a_web_process_whose_scheduler_stopped_beating_fires_as_an_in_process_scheduler(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(DEAD_SCHEDULER, "web.1:7:loop01", "inprocess", 150)

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert alert["subject"] == "scheduler:web.1:7:loop01"
    assert alert["summary"].startswith("The in-process scheduler web.1:7:loop01 sent its last heartbeat at ")
    assert alert["summary"].endswith(" and did not shut down; no scheduler alive")


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


async def test_a_series_without_a_recent_candle_fires_and_resolves_once_its_candles_are_stored(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    now = await pool.fetchval("SELECT date_trunc('minute', now())")
    config_id = await make_config(pool)
    symbol = await pool.fetchval("SELECT symbol FROM data_collection_configs WHERE id = $1", config_id)
    await pool.execute(
        "UPDATE data_collection_configs SET schedule_anchor_at = $2 WHERE id = $1", config_id, now - HOUR
    )
    await store_minutes(pool, symbol, now - timedelta(minutes=40), now - timedelta(minutes=30))
    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"]) == ("series_stale", f"series:{config_id}:1m")
    opened = (now - timedelta(minutes=31)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (
        alert["summary"]
        == f"{symbol} 1m on binance (config {config_id}): newest candle opened {opened}, more than 4 min behind"
    )

    await store_minutes(pool, symbol, now - timedelta(minutes=30), now)
    await evaluate_now(pool, alert_settings)
    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    assert subjects(answer["recent"]) == [("series_stale", f"series:{config_id}:1m")]


async def test_a_series_with_no_candle_at_all_is_stale_once_its_first_runs_had_their_time(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    await pool.execute("UPDATE data_collection_configs SET schedule_anchor_at = now() - interval '1 hour'")
    fresh_id = await make_config(pool)

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert alert["subject"] == f"series:{config_id}:1m" != f"series:{fresh_id}:1m"
    assert ": no candle stored yet, expected by " in alert["summary"]


async def test_an_exchange_holding_requests_longer_than_the_threshold_fires(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(PAUSE, "binance", "banned", 20 * 60, "418 I'm a teapot: IP banned until 1765020000000")
    await pool.execute(PAUSE, "okx", "paused", 60, "429 Too Many Requests")

    await evaluate_now(pool, alert_settings)

    [alert] = (await read_alerts(alert_client, viewer))["firing"]
    assert (alert["rule"], alert["subject"]) == ("exchange_paused", "exchange:binance")
    assert alert["summary"].startswith("binance has banned this service since ")
    assert alert["summary"].endswith(": 418 I'm a teapot: IP banned until 1765020000000")
    assert alert["details"]["state"] == "banned"


async def test_an_exchange_whose_pause_ended_resolves(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await pool.execute(PAUSE, "binance", "paused", 15 * 60, "429 Too Many Requests")
    await evaluate_now(pool, alert_settings)

    await pool.execute("UPDATE exchange_pauses SET until = now() - interval '1 second'")
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    assert subjects(answer["recent"]) == [("exchange_paused", "exchange:binance")]


async def test_a_failing_config_that_is_disabled_resolves(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await make_config(pool)
    await finish_run(pool, config_id, "failed")
    await finish_run(pool, config_id, "failed")
    await evaluate_now(pool, alert_settings)

    await pool.execute("UPDATE data_collection_configs SET enabled = false WHERE id = $1", config_id)
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer)
    assert answer["firing"] == []
    assert subjects(answer["recent"]) == [("config_failing", f"config:{config_id}")]
