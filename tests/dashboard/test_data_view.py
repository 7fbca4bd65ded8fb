"""The Data view: coverage per timeframe and a candlestick chart of the stored candles, gaps shaded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from tests.dashboard.conftest import Served, create_config, log_in
from tests.dashboard.seed import correct_stored_candles, wait_for_runs

# count the chart's pixels of the default candle colours and of the gap shading (alone or over white)
COUNT_PIXELS = """
box => {
  const near = (value, wanted) => Math.abs(value - wanted) < 14;
  const up = (r, g, b) => near(r, 38) && near(g, 166) && near(b, 154);
  const down = (r, g, b) => near(r, 239) && near(g, 83) && near(b, 80);
  const alone = (r, g, a) => a > 20 && a < 80 && r > 150 && g < 100;
  const shaded = (r, g, b, a) => alone(r, g, a) || (near(r, 246) && near(g, 221) && near(b, 221));
  let candles = 0, shading = 0;
  for (const canvas of box.querySelectorAll("canvas")) {
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 200 && (up(r, g, b) || down(r, g, b))) candles++;
      else if (shaded(r, g, b, a)) shading++;
    }
  }
  return { candles, shading };
}
"""


@pytest.fixture
def three_missing_hours(served: Served) -> Iterator[list[datetime]]:
    """The fake has no candles for three hours two days ago (no trades then)."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    missing = [hour - timedelta(hours=k) for k in range(3)]
    served.fake.missing_ms = {int(moment.timestamp() * 1000) for moment in missing}
    yield sorted(missing)
    served.fake.missing_ms = set()


async def test_the_data_view_draws_the_stored_candles_with_their_gaps(
    page: Page, served: Served, three_missing_hours: list[datetime]
) -> None:
    config = await create_config(served, "ATOM/USDT", timeframes=["1h"], enabled=True)  # runs at once
    await wait_for_runs(served.database_url, [config["id"]])

    await log_in(page, view="Data", query=f"config={config['id']}&timeframe=1h")

    coverage = page.get_by_role("region", name="Coverage of ATOM/USDT on binance").locator("tbody tr")
    await expect(coverage).to_have_count(1)
    # timeframe, first, last, candles, expected, missing, no trades, beyond reach, corrected, gaps: the
    # collector asked for the hole again and the exchange confirmed it has no candles there, so none is "missing"
    cells = await coverage.get_by_role("cell").all_inner_texts()
    assert (cells[0], cells[5], cells[6], cells[7], cells[8], cells[9]) == ("1h", "0", "3", "0", "0", "1")
    await expect(page.get_by_text("3 slots without a candle (missing or no trades) shaded")).to_be_visible()
    first_missing = three_missing_hours[0].strftime("%Y-%m-%d %H:%M UTC")
    await expect(page.get_by_role("listitem").filter(has_text="3 slots without a candle")).to_contain_text(
        first_missing
    )
    chart = page.get_by_role("img", name="Candlestick chart of ATOM/USDT on binance, 1h")
    drawn: dict[str, Any] = await chart.evaluate(COUNT_PIXELS)
    assert drawn["candles"] > 1000, drawn
    assert drawn["shading"] > 100, drawn


async def test_coverage_shows_how_far_behind_each_series_is(page: Page, served: Served) -> None:
    config = await create_config(served, "ARB/USDT", timeframes=["1h"], enabled=True)
    await wait_for_runs(served.database_url, [config["id"]])

    await log_in(page, view="Data", query=f"config={config['id']}&timeframe=1h")

    coverage = page.get_by_role("region", name="Coverage of ARB/USDT on binance")
    await expect(coverage.get_by_role("columnheader", name="Lag")).to_be_visible()
    lag = coverage.locator("tbody tr").get_by_role("cell").last
    await expect(lag).to_have_text(re.compile(r"^\d.* behind$"))


async def test_the_chart_zooms_and_moves_with_its_buttons(page: Page, served: Served) -> None:
    config = await create_config(served, "UNI/USDT", timeframes=["1h"], enabled=True)
    await wait_for_runs(served.database_url, [config["id"]])
    await log_in(page, view="Data", query=f"config={config['id']}&timeframe=1h")
    in_view = page.get_by_text(re.compile(r"^In view: "))
    await expect(in_view).to_be_visible()
    slots = int(re.findall(r"(\d+) slots", await in_view.inner_text())[0])

    await page.get_by_role("button", name="Zoom in").click()
    await expect(in_view).not_to_have_text(re.compile(rf" {slots} slots"))
    zoomed = await in_view.inner_text()
    await page.get_by_role("button", name="Earlier").click()
    await expect(in_view).not_to_have_text(zoomed)

    assert int(re.findall(r"(\d+) slots", zoomed)[0]) < slots


async def test_coverage_counts_the_stored_candles_the_exchange_corrected_afterwards(page: Page, served: Served) -> None:
    config = await create_config(served, "OP/USDT", timeframes=["1h"], enabled=True)
    await wait_for_runs(served.database_url, [config["id"]])
    # binance changes two stored candles; an admin compares the stored range with it again
    answer = await correct_stored_candles(served, "OP/USDT", "1h", 2)
    assert answer["revised"] == 2, answer

    await log_in(page, view="Data", query=f"config={config['id']}&timeframe=1h")

    coverage = page.get_by_role("region", name="Coverage of OP/USDT on binance")
    await expect(coverage.get_by_role("columnheader", name="Corrected")).to_be_visible()
    await expect(coverage.locator("tbody td[data-label='Corrected']")).to_have_text("2")
    await expect(
        page.get_by_text(
            "1h: binance corrected 2 candles after they were stored (a late trade, or a fix on its side); "
            "they were rewritten with its new prices and volume."
        )
    ).to_be_visible()


# a Kraken series of 1m candles over the latest 700 closed minutes, stored as a run would have
SEED_KRAKEN_SERIES = """
WITH series AS (
    INSERT INTO candle_series (id, exchange, symbol, timeframe)
    SELECT t.series_block * 100000000 + nextval('candle_series_number'), 'kraken', $1, '1m'
    FROM candle_timeframes() AS t WHERE t.timeframe = '1m'
    RETURNING id
), minutes AS (
    SELECT (extract(epoch FROM date_trunc('minute', now())) / 60)::integer AS now_minute
), partitions AS (
    SELECT count(*) FROM minutes, create_candle_partitions('1m', now_minute - 700, now_minute)
)
INSERT INTO candle_data (series_id, open_minute, open, high, low, close, volume)
SELECT series.id, m, 100, 101, 99, 100, 1
FROM series, minutes, partitions, generate_series(now_minute - 700, now_minute - 1) AS m
RETURNING series_id
"""


async def test_coverage_says_which_candles_are_beyond_what_the_exchange_serves(page: Page, served: Served) -> None:
    config = await create_config(served, "KRD/USDT", exchange="kraken", timeframes=["1m"], backfill_days=1)
    conn = await asyncpg.connect(served.database_url)
    try:
        series_id = (await conn.fetch(SEED_KRAKEN_SERIES, "KRD/USDT"))[0]["series_id"]
        await conn.execute("SELECT recount_candle_series($1)", series_id)
    finally:
        await conn.close()

    await log_in(page, view="Data", query=f"config={config['id']}&timeframe=1m")

    coverage = page.get_by_role("region", name="Coverage of KRD/USDT on kraken")
    await expect(coverage.get_by_role("columnheader", name="Beyond reach")).to_be_visible()
    # a day of 1m candles asked for, the 700 newest stored: 1,440 - 714 (Kraken's 720, 5 inside its edge, and
    # the open one) are beyond reach
    await expect(
        page.get_by_text(re.compile(r"^1m: 726 candles beyond what kraken serves: the latest 720 1m candles\.$"))
    ).to_be_visible()
