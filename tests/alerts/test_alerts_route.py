"""GET /alerts: who may read it, what it lists, its bounds, and cheap polling."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.conftest import ALERTS, evaluate_now, failing_config, finish_run, read_alerts

Client = AsyncTestClient[Litestar]


async def test_reading_alerts_needs_a_token(alert_client: Client) -> None:
    response = await alert_client.get(ALERTS)

    assert response.status_code == 401


async def test_a_quiet_deployment_has_nothing_firing_and_says_when_it_evaluates_next(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer)

    assert (answer["firing"], answer["firing_count"], answer["recent"]) == ([], 0, [])
    assert answer["next_evaluation_at"] is not None
    assert answer["delivery"] == {
        "webhook_configured": True,
        "undelivered": 0,
        "last_error": None,
        "next_attempt_at": None,
        "last_delivered_at": None,
        "given_up": 0,
    }


async def test_the_firing_list_is_limited_and_counts_them_all(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    for _ in range(3):
        await failing_config(pool)
    await evaluate_now(pool, alert_settings)

    answer = await read_alerts(alert_client, viewer, limit=2)

    assert len(answer["firing"]) == 2
    assert answer["firing_count"] == 3


async def test_recent_lists_what_resolved_within_the_hours_asked(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    config_id = await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await finish_run(pool, config_id, "success")
    await evaluate_now(pool, alert_settings)
    await pool.execute(
        "UPDATE alerts SET firing_since = firing_since - interval '31 hours', "
        "resolved_at = resolved_at - interval '30 hours'"
    )

    assert (await read_alerts(alert_client, viewer))["recent"] == []
    assert len((await read_alerts(alert_client, viewer, hours=48))["recent"]) == 1


async def test_an_unchanged_answer_is_a_304(
    alert_client: Client, viewer: dict[str, str], pool: Pool, alert_settings: Settings
) -> None:
    await failing_config(pool)
    await evaluate_now(pool, alert_settings)
    await pool.execute("UPDATE system_jobs SET next_run_at = now() + interval '1 hour' WHERE name = 'alert_evaluation'")
    first = await alert_client.get(ALERTS, headers=viewer)

    again = await alert_client.get(ALERTS, headers={**viewer, "If-None-Match": first.headers["ETag"]})

    assert again.status_code == 304


async def test_out_of_range_parameters_are_400s_naming_them(alert_client: Client, viewer: dict[str, str]) -> None:
    for query, name in (({"hours": 0}, "hours"), ({"hours": 721}, "hours"), ({"limit": 1001}, "limit")):
        response = await alert_client.get(ALERTS, headers=viewer, params=query)
        assert response.status_code == 400
        assert name in response.text
