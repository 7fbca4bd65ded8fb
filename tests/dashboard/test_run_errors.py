"""A failed run in the Control Center: its cause in one line where runs are listed, the full chain
in the run's detail, and a long last error that never pushes the Configs actions out of sight."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.dashboard.conftest import DESKTOP, PHONE, Served, create_config, log_in
from tests.dashboard.failed_runs import DNS_CAUSE, DNS_CHAIN, DNS_TYPE, insert_dns_failure
from tests.dashboard.seed import wait_for_runs

TIMEFRAMES = ["1m", "5m", "15m", "1h"]
ONE_LINE_ROW_PX = 80  # a row of one-line cells with a two-line time; a 12-line error is ~250 px


async def test_a_failed_run_shows_its_cause_once_in_the_list_and_the_full_chain_in_its_detail(
    page: Page, served: Served
) -> None:
    config = await create_config(served, "OP/USDT", timeframes=TIMEFRAMES)
    run_id = await insert_dns_failure(served.database_url, config["id"], TIMEFRAMES)
    await log_in(page, view="Execution logs", query=f"config_id={config['id']}")

    row = page.get_by_role("region", name="Execution logs").locator("tbody tr").filter(has_text=f"#{run_id}")
    await expect(row.locator("td[data-label=Error]")).to_have_text(DNS_CAUSE)
    box = await row.bounding_box()
    assert box is not None
    assert box["height"] < ONE_LINE_ROW_PX, box

    await row.get_by_role("link", name=f"#{run_id}").click()
    error = page.get_by_role("region", name="Error")
    await expect(error.locator("p").first).to_have_text(DNS_CAUSE)
    await expect(error.get_by_role("listitem")).to_have_text(
        [f"{timeframe}: {DNS_TYPE}: {DNS_CHAIN}" for timeframe in TIMEFRAMES]
    )
    per_timeframe = page.get_by_role("region", name="Per timeframe").locator("td[data-label=Error]")
    await expect(per_timeframe).to_have_text([DNS_CAUSE] * len(TIMEFRAMES))


async def test_a_long_last_error_leaves_the_configs_actions_in_view_at_1280_and_375_px(
    page: Page, served: Served
) -> None:
    collected = ["15m", "1h", "4h", "1d"]  # each with its lag: the widest timeframes cell
    with_cause = await create_config(served, "SUI/USDT", timeframes=collected, enabled=True)
    without_cause = await create_config(served, "TIA/USDT", timeframes=collected, enabled=True)
    await wait_for_runs(served.database_url, [with_cause["id"], without_cause["id"]])
    await insert_dns_failure(served.database_url, with_cause["id"], TIMEFRAMES)
    await insert_dns_failure(served.database_url, without_cause["id"], TIMEFRAMES, with_cause=False)
    await log_in(page, view="Configs")

    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        sui = page.get_by_role("row").filter(has=page.get_by_text("SUI/USDT", exact=True))
        await expect(sui.get_by_text(f"Last error: {DNS_CAUSE}", exact=True)).to_be_visible()
        table = page.get_by_role("region", name="Configs")
        shown = await table.bounding_box()
        assert shown is not None
        right_edge = min(viewport["width"], shown["x"] + shown["width"])
        for symbol in ("SUI/USDT", "TIA/USDT"):
            row = page.get_by_role("row").filter(has=page.get_by_text(symbol, exact=True))
            for name in ("Edit", "Trigger now", "Delete"):
                button = await row.get_by_role("button", name=name).bounding_box()  # nothing scrolled sideways
                assert button is not None
                assert button["x"] >= 0, f"{name} of {symbol} starts left of the screen: {button}"
                assert button["x"] + button["width"] <= right_edge, (
                    f"{name} of {symbol} is cut off at {viewport['width']} px: {button}, the table ends at {right_edge}"
                )
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the page is {width} px wide at {viewport['width']} px"
