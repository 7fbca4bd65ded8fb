"""Each exchange's demand against its request budget, and how far behind its runs are, as GET /status
shows them; and the series one address carries at ccxt's defaults (the table in docs/scheduling.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.scheduling.budget import series_within_budget
from backend.settings import Settings
from tests.monitoring.conftest import ADMIN_PATH

Client = AsyncTestClient[Any]


async def _configs(pool: Pool, *, exchange: str, count: int, timeframes: list[str], interval_minutes: int) -> None:
    await pool.execute(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, next_run_at) "
        "SELECT 'B' || n || '/USDT', $1, $3, $4, now() + interval '1 minute' FROM generate_series(1, $2) AS n",
        exchange,
        count,
        timeframes,
        interval_minutes,
    )


async def _exchanges(client: Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = await client.get(f"{ADMIN_PATH}/status", headers=headers)
    assert response.status_code == 200
    return {row["exchange"]: row for row in response.json()["exchanges"]}


async def test_status_lists_each_exchange_with_its_demand_and_ccxts_budget(
    pool: Pool, client: Client, admin_headers: dict[str, str]
) -> None:
    await _configs(pool, exchange="binance", count=30, timeframes=["1m", "1h"], interval_minutes=1)
    await _configs(pool, exchange="okx", count=6, timeframes=["1h"], interval_minutes=60)

    exchanges = await _exchanges(client, admin_headers)

    binance = exchanges["binance"]
    assert binance["series"] == 60
    # 30 series with a new 1m candle each minute, 30 with a new 1h candle each hour
    assert binance["demand_requests_per_second"] == round(30 / 60 + 30 / 3600, 4)
    assert binance["budget_requests_per_second"] == 50.0  # rateLimit 50 ms, klines cost 0.4
    assert binance["demand_share"] == round((30 / 60 + 30 / 3600) / 50, 4)
    assert binance["behind_seconds"] == 0
    assert binance["state"] == "ok"
    assert exchanges["okx"]["budget_requests_per_second"] == round(1000 / (110 * 0.5), 4)
    assert exchanges["okx"]["demand_requests_per_second"] == round(6 / 3600, 4)


async def test_an_exchange_asked_for_more_than_its_budget_is_over_budget(
    pool: Pool, settings: Settings, admin_headers: dict[str, str]
) -> None:
    slow = replace(settings, exchange_overrides={"binance": {"rateLimit": 60_000}})  # a page every 24 s
    await _configs(pool, exchange="binance", count=3, timeframes=["1m"], interval_minutes=1)

    async with AsyncTestClient(app=create_app(slow)) as client:
        binance = (await _exchanges(client, admin_headers))["binance"]

    assert binance["budget_requests_per_second"] == round(1000 / 24_000, 4)
    assert binance["demand_share"] > 1
    assert binance["state"] == "over_budget"


async def test_an_exchange_without_its_rate_limiter_has_no_budget(
    pool: Pool, settings: Settings, admin_headers: dict[str, str]
) -> None:
    unlimited = replace(settings, exchange_overrides={"binance": {"enableRateLimit": False}})
    await _configs(pool, exchange="binance", count=3, timeframes=["1m"], interval_minutes=1)

    async with AsyncTestClient(app=create_app(unlimited)) as client:
        binance = (await _exchanges(client, admin_headers))["binance"]

    assert binance["budget_requests_per_second"] is None
    assert binance["demand_share"] is None
    assert binance["state"] == "ok"


async def test_status_says_behind_when_a_slot_has_waited_to_start(
    pool: Pool, client: Client, admin_headers: dict[str, str]
) -> None:
    await _configs(pool, exchange="binance", count=2, timeframes=["1m"], interval_minutes=1)
    await _configs(pool, exchange="okx", count=1, timeframes=["1m"], interval_minutes=1)
    await pool.execute(
        "UPDATE data_collection_configs SET next_run_at = now() - interval '90 seconds' WHERE exchange = 'binance'"
    )

    exchanges = await _exchanges(client, admin_headers)

    assert exchanges["binance"]["state"] == "behind"
    assert exchanges["binance"]["behind_seconds"] >= 90
    assert exchanges["okx"]["state"] == "ok"


async def test_a_queued_run_not_started_past_its_slot_counts_as_behind(
    pool: Pool, client: Client, admin_headers: dict[str, str]
) -> None:
    await _configs(pool, exchange="binance", count=1, timeframes=["1m"], interval_minutes=60)
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, config_id, exchange, symbol, status, trigger, "
        "scheduled_for, started_at) SELECT 'collect_data_' || id, 'data_collection', id, exchange, symbol, "
        "'running', 'schedule', now() - interval '45 seconds', now() - interval '46 seconds' "
        "FROM data_collection_configs"
    )

    binance = (await _exchanges(client, admin_headers))["binance"]

    assert binance["state"] == "behind"
    assert binance["behind_seconds"] >= 45


def test_series_one_address_carries_at_ccxts_defaults() -> None:
    # the table of docs/scheduling.md, pages a second = 1000 / (rateLimit x the candle endpoint's cost):
    # Binance 1000 / (50 ms x 0.4) = 50 pages of 1,000 candles, OKX 1000 / (110 ms x 0.5) of 300,
    # Bybit 1000 / (20 ms x 5) = 10 of 1,000, Kraken 1000 / (1000 ms x 1.2) of 720, KuCoin
    # 1000 / (7.5 ms x 3) of 1,500, Coinbase 1000 / (34 ms x 3) of 300, Gate 1000 / (50 ms x 1) = 20 of 1,000
    exchanges = ("binance", "okx", "bybit", "kraken", "kucoin", "coinbase", "gate")
    table = {
        ("1m", 1): (3000, 1090, 600, 50, 2666, 588, 1200),
        ("5m", 5): (15000, 5454, 3000, 250, 13333, 2941, 6000),
        ("1h", 60): (180000, 65454, 36000, 3000, 160000, 35294, 72000),
        ("1h", 1): (180000, 65454, 36000, 3000, 160000, 35294, 72000),  # a page per new candle, however often it runs
        # 1,440 candles: 2 pages of Binance, Bybit, Kraken and Gate, 5 of OKX and Coinbase, 1 of KuCoin
        ("1m", 1440): (2160000, 314181, 432000, 36000, 3840000, 169411, 864000),
    }
    for (timeframe, interval_minutes), carried in table.items():
        assert (
            tuple(
                series_within_budget(exchange, timeframe=timeframe, interval_minutes=interval_minutes)
                for exchange in exchanges
            )
            == carried
        )


@pytest.mark.parametrize(
    ("exchange", "pages_per_second"),
    [
        ("binance", 50.0),
        ("okx", 18.1818),
        ("kraken", 0.8333),
        ("bybit", 10.0),
        ("kucoin", 44.4444),
        ("coinbase", 9.8039),
        ("gate", 20.0),
    ],
)
async def test_status_budgets_each_proven_exchange_at_its_candle_endpoints_cost(
    pool: Pool, client: Client, admin_headers: dict[str, str], exchange: str, pages_per_second: float
) -> None:
    await _configs(pool, exchange=exchange, count=1, timeframes=["1m"], interval_minutes=1)

    assert (await _exchanges(client, admin_headers))[exchange]["budget_requests_per_second"] == pages_per_second
