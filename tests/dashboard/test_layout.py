"""Every view on a 375 px phone: nothing wider than the screen, navigation and controls in reach."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.dashboard.conftest import PHONE, Served, create_config, log_in, open_view

VIEWS = ("Overview", "Configs", "Execution logs", "Data", "Alerts")


async def test_every_view_fits_a_375_px_screen(page: Page, served: Served) -> None:
    await create_config(
        served, "BTC/USDT", timeframes=["1m", "5m", "15m", "1h", "4h", "1d"], description="A long description " * 5
    )
    await page.set_viewport_size(PHONE)
    await log_in(page)

    for view in VIEWS:
        await open_view(page, view)
        await page.wait_for_load_state("networkidle")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{view} is {width} px wide"
        await expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
        for link in VIEWS:
            await expect(page.get_by_role("navigation", name="Views").get_by_role("link", name=link)).to_be_visible()
