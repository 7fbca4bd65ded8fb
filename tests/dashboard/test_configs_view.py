"""The Configs view: the table, create and edit forms with the API's messages at their fields,
delete with confirmation, "Trigger now" followed live, bulk actions, viewers, text stays text."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Dialog, Locator, Page, WebSocketRoute, expect

from tests.conftest import VIEWER_EMAIL
from tests.dashboard.conftest import ADMIN_PATH, UNLISTED, Served, create_config, log_in, make_stale
from tests.dashboard.seed import fetch_one, wait_for_runs

# a run of config $1 going on in another process
RUNNING_ELSEWHERE = """
INSERT INTO job_execution_logs (job_name, job_type, config_id, symbol, exchange, status, trigger, heartbeat_at)
SELECT 'collect_data_' || id, 'data_collection', id, symbol, exchange, 'running', 'manual', now()
FROM data_collection_configs WHERE id = $1
RETURNING id
"""
CONFIG_BY_SYMBOL = "SELECT row_to_json(c)::text FROM data_collection_configs AS c WHERE symbol = $1"


async def stored_config(served: Served, symbol: str) -> dict[str, Any] | None:
    row = await fetch_one(served.database_url, CONFIG_BY_SYMBOL, symbol)
    return json.loads(row) if row else None


async def api_error(served: Served, body: dict[str, Any]) -> str:
    """The message the API gives for this create body (the one the form must show)."""
    async with served.api(await served.token()) as client:
        response = await client.post(f"{ADMIN_PATH}/configs", json=body)
    assert 400 <= response.status_code < 500, response.text
    answer = response.json()
    message: str = answer["extra"][0]["message"] if answer.get("extra") else answer["detail"]
    return message


def form_body(symbol: str, **fields: Any) -> dict[str, Any]:
    """What the form sends with its defaults."""
    body = {"symbol": symbol, "exchange": "binance", "timeframes": ["1h"], "interval_minutes": 10, "backfill_days": 7}
    return {**body, "enabled": True, "description": None, **fields}


async def error_of(page: Page, label: str) -> Locator:
    """The error line the field labelled `label` is described by."""
    described_by = await page.get_by_label(label, exact=True).first.get_attribute("aria-describedby")
    assert described_by
    return page.locator(f"#{described_by.split()[-1]}")


def row(page: Page, symbol: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_text(symbol, exact=True))


async def open_new_config_form(page: Page) -> None:
    await log_in(page, view="Configs")
    await page.get_by_role("button", name="New config").click()


async def test_an_admin_creates_a_config_through_the_form_and_sees_it_in_the_table(page: Page, served: Served) -> None:
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("sol/usdt")
    await page.get_by_label("Exchange").fill("Binance")  # the form sends ccxt's id, in lower case
    timeframes = page.get_by_role("group", name="Timeframes")
    await timeframes.get_by_label("4h", exact=True).check()
    await page.get_by_label("Interval (minutes)").fill("15")
    await page.get_by_label("Enabled").uncheck()
    await page.get_by_role("button", name="Create").click()

    await expect(page.get_by_text(re.compile(r"Created SOL/USDT on binance \(#\d+\)"))).to_be_visible()
    await expect(row(page, "SOL/USDT")).to_contain_text("1h, 4h")
    await expect(row(page, "SOL/USDT")).to_contain_text("every 15 min")
    stored = await stored_config(served, "SOL/USDT")
    assert stored is not None
    assert (stored["exchange"], stored["timeframes"], stored["interval_minutes"], stored["enabled"]) == (
        "binance",
        ["1h", "4h"],
        15,
        False,
    )


async def test_a_bad_symbol_shows_the_apis_message_next_to_the_symbol_field(page: Page, served: Served) -> None:
    expected = await api_error(served, form_body("SOLUSDT"))
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("SOLUSDT")
    await page.get_by_role("button", name="Create").click()

    await expect(await error_of(page, "Symbol")).to_have_text(expected)
    await expect(page.get_by_label("Symbol")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Symbol")).to_be_focused()
    assert await stored_config(served, "SOLUSDT") is None


async def test_an_interval_out_of_range_is_named_next_to_its_field(page: Page, served: Served) -> None:
    expected = await api_error(served, form_body("NEAR/USDT", interval_minutes=0))
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("NEAR/USDT")
    await page.get_by_label("Interval (minutes)").fill("0")
    await page.get_by_role("button", name="Create").click()

    await expect(await error_of(page, "Interval (minutes)")).to_have_text(expected)
    await expect(await error_of(page, "Symbol")).to_be_hidden()
    assert await stored_config(served, "NEAR/USDT") is None


async def test_an_unknown_exchange_is_named_next_to_the_exchange_field(page: Page, served: Served) -> None:
    expected = await api_error(served, form_body("NEAR/USDT", exchange="nope"))
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("NEAR/USDT")
    await page.get_by_label("Exchange").fill("nope")
    await page.get_by_role("button", name="Create").click()

    await expect(await error_of(page, "Exchange")).to_have_text(expected)


async def test_no_timeframe_is_named_next_to_the_timeframes(page: Page, served: Served) -> None:
    expected = await api_error(served, form_body("NEAR/USDT", timeframes=[]))
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("NEAR/USDT")
    await page.get_by_role("group", name="Timeframes").get_by_label("1h", exact=True).uncheck()
    await page.get_by_role("button", name="Create").click()

    await expect(await error_of(page, "Timeframes")).to_have_text(expected)


async def test_a_symbol_the_exchange_already_has_shows_the_conflict_at_the_symbol(page: Page, served: Served) -> None:
    await create_config(served, "XRP/USDT")
    expected = await api_error(served, form_body("XRP/USDT"))
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("XRP/USDT")
    await page.get_by_role("button", name="Create").click()

    await expect(await error_of(page, "Symbol")).to_have_text(expected)


async def test_editing_a_config_changes_only_what_was_changed(page: Page, served: Served) -> None:
    await create_config(served, "ADA/USDT", description="keep me")
    await log_in(page, view="Configs")
    await row(page, "ADA/USDT").get_by_role("button", name="Edit").click()
    await expect(page.get_by_role("heading", name="Edit ADA/USDT on binance")).to_be_visible()
    await page.get_by_label("Interval (minutes)").fill("30")
    await page.get_by_role("button", name="Save").click()

    await expect(page.get_by_text("Saved ADA/USDT on binance.")).to_be_visible()
    await expect(row(page, "ADA/USDT")).to_contain_text("every 30 min")
    stored = await stored_config(served, "ADA/USDT")
    assert stored is not None
    assert (stored["interval_minutes"], stored["description"]) == (30, "keep me")


async def test_deleting_asks_first_and_cancel_keeps_the_config(page: Page, served: Served) -> None:
    await create_config(served, "DOT/USDT")
    await log_in(page, view="Configs")

    await row(page, "DOT/USDT").get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete DOT/USDT on binance?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(row(page, "DOT/USDT")).to_be_visible()
    assert await stored_config(served, "DOT/USDT") is not None

    await row(page, "DOT/USDT").get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("Deleted DOT/USDT on binance.")).to_be_visible()
    await expect(row(page, "DOT/USDT")).to_have_count(0)
    assert await stored_config(served, "DOT/USDT") is None


async def test_trigger_now_shows_the_run_it_started_until_it_ends(page: Page, served: Served) -> None:
    await create_config(served, "LTC/USDT")
    await log_in(page, view="Configs")
    served.fake.gate = asyncio.Event()  # the exchange holds the run's requests until the test lets them go
    trigger = row(page, "LTC/USDT").get_by_role("button", name="Trigger now")
    try:
        await trigger.click()
        run_line = row(page, "LTC/USDT").locator(".run-line")
        await expect(run_line).to_have_text(re.compile(r"Run #\d+ running$"))
        await expect(trigger).to_be_disabled()

        served.fake.gate.set()

        await expect(run_line).to_have_text(re.compile(r"Run #\d+ success \d+ records in"))
        await expect(trigger).to_be_enabled()
    finally:
        served.fake.gate.set()
        served.fake.gate = None
    run_id = int(re.findall(r"Run #(\d+)", await run_line.inner_text())[0])
    status = await fetch_one(served.database_url, "SELECT status FROM job_execution_logs WHERE id = $1", run_id)
    assert status == "success"


async def test_trigger_now_refused_as_already_running_says_so_until_dismissed(page: Page, served: Served) -> None:
    config = await create_config(served, "INJ/USDT")

    async def no_live_updates(socket: WebSocketRoute) -> None:  # so the page learns of the run only when it asks
        await socket.close(code=1011, reason="down for the test")

    await page.route_web_socket(re.compile(r"/events$"), no_live_updates)
    await page.clock.install()
    await page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))  # no poll, no refresh until the test says
    await log_in(page, view="Configs")
    trigger = row(page, "INJ/USDT").get_by_role("button", name="Trigger now")
    await expect(trigger).to_be_enabled()
    run_id = await fetch_one(served.database_url, RUNNING_ELSEWHERE, config["id"])

    await trigger.click()

    refused = page.get_by_role("alert")
    message = f"Could not trigger INJ/USDT on binance: Config {config['id']} is already running (run {run_id})"
    await expect(refused).to_have_text(message)
    async with page.expect_response(re.compile(r"/stats/by-config$")):
        await page.clock.run_for(1000)  # the refresh that follows an action
    await expect(trigger).to_be_disabled()
    await expect(refused).to_have_text(message)

    await page.get_by_role("button", name="Dismiss").click()
    await expect(refused).to_be_hidden()


async def test_bulk_actions_show_the_outcome_for_each_config(page: Page, served: Served) -> None:
    bnb = await create_config(served, "BNB/USDT")
    trx = await create_config(served, "TRX/USDT")
    await log_in(page, view="Configs")
    for symbol in ("BNB/USDT", "TRX/USDT"):
        await page.get_by_role("checkbox", name=f"Select {symbol} on binance").check()
    await expect(page.get_by_text("2 selected")).to_be_visible()

    await page.get_by_role("button", name="Enable selected").click()

    results = page.get_by_role("region", name="Bulk results")
    await expect(results.get_by_role("listitem")).to_have_text(
        [f"BNB/USDT on binance (#{bnb['id']}): enabled", f"TRX/USDT on binance (#{trx['id']}): enabled"]
    )
    await expect(page.get_by_role("switch", name="Enabled: TRX/USDT on binance")).to_be_checked()
    assert (await stored_config(served, "BNB/USDT") or {})["enabled"] is True

    for symbol in ("BNB/USDT", "TRX/USDT"):
        await page.get_by_role("checkbox", name=f"Select {symbol} on binance").check()
    await page.get_by_role("button", name="Delete selected").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()

    await expect(results.get_by_role("listitem")).to_have_text(
        [re.compile(r"BNB/USDT.*: deleted"), re.compile(r"TRX/USDT.*: deleted")]
    )
    await expect(row(page, "TRX/USDT")).to_have_count(0)
    assert await stored_config(served, "TRX/USDT") is None


async def test_each_timeframe_shows_its_lag_and_a_stale_one_says_so(page: Page, served: Served) -> None:
    fresh = await create_config(served, "APT/USDT", timeframes=["1h", "1d"], enabled=True)
    stale = await create_config(served, UNLISTED[1], timeframes=["1h"], enabled=True)
    await wait_for_runs(served.database_url, [fresh["id"], stale["id"]])
    await make_stale(served, stale["id"])

    await log_in(page, view="Configs")

    lags = page.get_by_role("list", name="Freshness of APT/USDT on binance").get_by_role("listitem")
    await expect(lags).to_have_text([re.compile(r"^1h \d.* behind$"), re.compile(r"^1d \d.* behind$")])
    stale_lags = page.get_by_role("list", name=f"Freshness of {UNLISTED[1]} on binance")
    await expect(stale_lags.get_by_role("listitem")).to_have_text("1h nothing stored stale")


async def test_a_viewer_sees_the_configs_and_no_write_control(page: Page, served: Served) -> None:
    await create_config(served, "AVAX/USDT")
    await log_in(page, VIEWER_EMAIL, view="Configs")

    await expect(row(page, "AVAX/USDT")).to_be_visible()
    for name in ("New config", "Edit", "Trigger now", "Delete", "Enable selected", "Delete selected"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)
    await expect(page.get_by_role("checkbox")).to_have_count(0)
    await expect(page.get_by_role("switch")).to_have_count(0)
    await expect(row(page, "AVAX/USDT")).to_contain_text("No")


async def test_a_description_with_markup_is_shown_as_text(page: Page, served: Served) -> None:
    markup = "<img src=x onerror=alert(1)>"
    await create_config(served, "LINK/USDT", description=markup)
    dialogs: list[Dialog] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog))
    await log_in(page, view="Configs")

    await expect(row(page, "LINK/USDT").get_by_text(markup, exact=True)).to_be_visible()
    await expect(page.locator("img")).to_have_count(0)
    assert dialogs == []


async def test_the_table_marks_unverified_exchanges_and_shows_each_configs_warnings(page: Page, served: Served) -> None:
    await create_config(served, "UNV/USDT", exchange="bitstamp")
    await create_config(served, "KRW/USDT", exchange="kraken", timeframes=["1m"], backfill_days=3)

    await log_in(page, view="Configs")

    unverified = row(page, "UNV/USDT").get_by_text("unverified", exact=True)
    await expect(unverified).to_be_visible()
    assert "never confirm" in (await unverified.get_attribute("title") or "")
    await expect(row(page, "KRW/USDT").get_by_text("unverified", exact=True)).to_have_count(0)
    await expect(row(page, "KRW/USDT")).to_contain_text(
        "backfill_days: 3 days reach past what kraken serves (1m: its latest 720 candles, 12 hours)"
    )


async def test_saving_a_config_past_the_exchanges_reach_says_so(page: Page, served: Served) -> None:
    await open_new_config_form(page)
    await page.get_by_label("Symbol").fill("gtw/usdt")
    await page.get_by_label("Exchange").fill("gate")
    await page.get_by_role("group", name="Timeframes").get_by_label("1m", exact=True).check()
    await page.get_by_role("group", name="Timeframes").get_by_label("1h", exact=True).uncheck()
    await page.get_by_role("checkbox", name="Enabled", exact=True).uncheck()
    await page.get_by_role("button", name="Create").click()

    await expect(
        page.get_by_text(re.compile(r"Created GTW/USDT on gate \(#\d+\)\. Warning: 7 days reach past"))
    ).to_be_visible()
    await expect(row(page, "GTW/USDT")).to_contain_text("1m: its latest 10,000 candles, 6.9 days")
