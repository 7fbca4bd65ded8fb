"""Freshness per series: the newest stored candle, its lag, and the moment a series turns stale.

Candles are stored as the collector stores them (``store_candles``); configs are rows enabled at a
known moment, so every threshold is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection.repository import CandleRow
from backend.collection.storage import store_candles
from backend.db.pool import Pool
from backend.monitoring.freshness import read_freshness_summary, read_series_freshness
from backend.settings import Settings
from tests.monitoring.conftest import ADMIN_PATH, away_from_a_minute_edge, until_the_app_has_heard

Client = AsyncTestClient[Litestar]

ENABLED_AT = datetime(2025, 1, 10, tzinfo=UTC)
NEWEST = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # open time of the newest stored 1h candle
NEWEST_END = NEWEST + timedelta(hours=1)
MARGIN = Settings().freshness_margin_seconds
SECOND = timedelta(seconds=1)


async def _config(
    pool: Pool,
    *,
    symbol: str = "BTC/USDT",
    timeframes: tuple[str, ...] = ("1h",),
    interval_minutes: int = 10,
    enabled: bool = True,
    enabled_at: datetime = ENABLED_AT,
) -> int:
    config_id: int = await pool.fetchval(
        "INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled, "
        "schedule_anchor_at, created_at) VALUES ($1, 'binance', $2, $3, $4, $5, $5) RETURNING id",
        symbol,
        list(timeframes),
        interval_minutes,
        enabled,
        enabled_at,
    )
    return config_id


def _hours(last_open: datetime, count: int) -> list[CandleRow]:
    return [(last_open - h * timedelta(hours=1), 100.0, 101.0, 99.0, 100.5, 2.0) for h in reversed(range(count))]


async def _store(pool: Pool, rows: list[CandleRow], *, timeframe: str = "1h", symbol: str = "BTC/USDT") -> None:
    await store_candles(pool, exchange="binance", symbol=symbol, timeframe=timeframe, rows=rows)


async def test_newest_candle_and_lag_come_from_the_stored_series(pool: Pool) -> None:
    config_id = await _config(pool)
    await _store(pool, _hours(NEWEST, 24))

    [series] = await read_series_freshness(pool, now=NEWEST_END + timedelta(minutes=7))

    assert (series.config_id, series.exchange, series.symbol, series.timeframe) == (
        config_id,
        "binance",
        "BTC/USDT",
        "1h",
    )
    assert series.newest_candle == NEWEST
    assert series.lag_seconds == 7 * 60


async def test_series_turns_stale_one_candle_two_intervals_and_the_margin_after_its_newest_candle(pool: Pool) -> None:
    await _config(pool, interval_minutes=10)
    await _store(pool, _hours(NEWEST, 3))
    limit = NEWEST_END + timedelta(hours=1, minutes=20, seconds=MARGIN)

    [before] = await read_series_freshness(pool, now=limit - SECOND)
    [after] = await read_series_freshness(pool, now=limit + SECOND)

    assert before.stale_after_seconds == 3600 + 2 * 600 + MARGIN
    assert (before.stale, after.stale) == (False, True)
    assert before.stale_at == after.stale_at == limit


async def test_margin_is_the_freshness_margin_setting(pool: Pool) -> None:
    await _config(pool, interval_minutes=10)
    await _store(pool, _hours(NEWEST, 3))
    settings = Settings(freshness_margin_seconds=600)

    [series] = await read_series_freshness(pool, now=NEWEST_END, settings=settings)

    assert series.stale_after_seconds == 3600 + 2 * 600 + 600


async def test_a_newer_candle_makes_a_stale_series_fresh_again(pool: Pool) -> None:
    await _config(pool)
    await _store(pool, _hours(NEWEST - timedelta(hours=5), 3))
    now = NEWEST_END + timedelta(minutes=1)
    [stale] = await read_series_freshness(pool, now=now)

    await _store(pool, _hours(NEWEST, 5))
    [fresh] = await read_series_freshness(pool, now=now)

    assert (stale.stale, fresh.stale) == (True, False)
    assert fresh.lag_seconds == 60


async def test_a_config_enabled_lately_is_given_the_time_to_catch_up(pool: Pool) -> None:
    enabled_at = NEWEST_END + timedelta(days=3, minutes=30)  # disabled for days, then enabled again
    await _config(pool, enabled_at=enabled_at)
    await _store(pool, _hours(NEWEST, 3))
    first_candle_end = enabled_at.replace(minute=0) + timedelta(hours=1)
    limit = first_candle_end + timedelta(minutes=20, seconds=MARGIN)

    [before] = await read_series_freshness(pool, now=limit - SECOND)
    [after] = await read_series_freshness(pool, now=limit + SECOND)

    assert before.lag_seconds is not None
    assert before.lag_seconds > before.stale_after_seconds
    assert (before.stale, after.stale) == (False, True)


async def test_series_without_candles_turns_stale_after_its_first_candle_could_have_come(pool: Pool) -> None:
    await _config(pool)
    limit = ENABLED_AT + timedelta(hours=1, minutes=20, seconds=MARGIN)

    [before] = await read_series_freshness(pool, now=limit - SECOND)
    [after] = await read_series_freshness(pool, now=limit + SECOND)

    assert (before.newest_candle, before.lag_seconds) == (None, None)
    assert (before.stale, after.stale) == (False, True)


async def test_monthly_series_waits_for_the_length_of_the_next_month(pool: Pool) -> None:
    await _config(pool, timeframes=("1M",), interval_minutes=60)
    january = datetime(2025, 1, 1, tzinfo=UTC)
    await _store(pool, [(january, 1.0, 2.0, 0.5, 1.5, 10.0)], timeframe="1M")

    [series] = await read_series_freshness(pool, now=datetime(2025, 2, 2, tzinfo=UTC))

    assert series.stale_after_seconds == 28 * 86400 + 2 * 3600 + MARGIN  # February 2025
    assert series.stale_at == datetime(2025, 3, 1, 2, tzinfo=UTC) + timedelta(seconds=MARGIN)


async def test_weekly_series_counts_from_mondays(pool: Pool) -> None:
    enabled_at = datetime(2025, 1, 8, 15, tzinfo=UTC)  # a Wednesday: the week open then began on Monday the 6th
    await _config(pool, timeframes=("1w",), interval_minutes=60, enabled_at=enabled_at)
    monday = datetime(2025, 1, 6, tzinfo=UTC)
    await _store(pool, [(monday, 1.0, 2.0, 0.5, 1.5, 10.0)], timeframe="1w")

    [series] = await read_series_freshness(pool, now=datetime(2025, 1, 14, tzinfo=UTC))

    assert series.lag_seconds == 86400  # the week closed on Monday the 13th
    assert series.stale_at == datetime(2025, 1, 20, 2, tzinfo=UTC) + timedelta(seconds=MARGIN)


async def test_every_timeframe_of_enabled_configs_only_in_config_order(pool: Pool) -> None:
    first = await _config(pool, timeframes=("1h", "1m", "1d"))
    await _config(pool, symbol="ETH/USDT", enabled=False)
    third = await _config(pool, symbol="SOL/USDT", timeframes=("5m",))

    series = await read_series_freshness(pool, now=NEWEST_END)

    assert [(s.config_id, s.timeframe) for s in series] == [(first, "1h"), (first, "1m"), (first, "1d"), (third, "5m")]


async def test_one_market_can_be_read_alone(pool: Pool) -> None:
    await _config(pool)
    await _config(pool, symbol="ETH/USDT")

    series = await read_series_freshness(pool, now=NEWEST_END, exchange="binance", symbol="ETH/USDT")

    assert [s.symbol for s in series] == ["ETH/USDT"]


async def test_summary_counts_stale_series_and_shows_the_worst_first(pool: Pool) -> None:
    await _config(pool, timeframes=("1h", "1m"))
    await _config(pool, symbol="ETH/USDT")
    await _store(pool, _hours(NEWEST, 2))
    await _store(pool, _hours(NEWEST - timedelta(hours=10), 2), symbol="ETH/USDT")
    now = NEWEST_END + timedelta(minutes=5)

    summary = await read_freshness_summary(pool, now=now, worst=2)

    assert (summary.series, summary.stale_series) == (3, 2)
    assert [(s.symbol, s.timeframe) for s in summary.worst] == [("BTC/USDT", "1m"), ("ETH/USDT", "1h")]
    assert all(s.stale for s in summary.worst)


async def test_status_counts_stale_series_and_lists_the_worst(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _config(pool, timeframes=("1h", "1d"))
    recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await _store(pool, _hours(recent, 2))

    body = (await client.get(f"{ADMIN_PATH}/status", headers=viewer_headers)).json()

    assert (body["freshness"]["series"], body["freshness"]["stale_series"]) == (2, 1)
    worst = body["freshness"]["worst"]
    assert [(s["timeframe"], s["stale"]) for s in worst] == [("1d", True), ("1h", False)]
    assert worst[1]["lag_seconds"] < 3600
    assert worst[1]["newest_candle"] == recent.isoformat().replace("+00:00", "Z")


async def test_freshness_route_lists_every_series_with_an_etag(
    app: Litestar, client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    config_id = await _config(pool, timeframes=("1h", "1m"))
    await until_the_app_has_heard(app, pool)
    await away_from_a_minute_edge()

    response = await client.get(f"{ADMIN_PATH}/freshness", headers=viewer_headers)
    again = await client.get(
        f"{ADMIN_PATH}/freshness", headers={**viewer_headers, "If-None-Match": response.headers["ETag"]}
    )

    assert response.status_code == 200
    assert [(s["config_id"], s["timeframe"], s["stale"]) for s in response.json()] == [
        (config_id, "1h", True),
        (config_id, "1m", True),
    ]
    assert again.status_code == 304


async def test_freshness_route_needs_a_token(client: Client) -> None:
    assert (await client.get(f"{ADMIN_PATH}/freshness")).status_code == 401


async def test_coverage_shows_the_lag_and_whether_a_collected_series_is_stale(
    client: Client, viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _config(pool)  # collects 1h only
    recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await _store(pool, _hours(recent, 2))
    old_4h = recent.replace(hour=recent.hour - recent.hour % 4) - timedelta(days=2)
    await _store(pool, [(old_4h, 1.0, 2.0, 0.5, 1.5, 3.0)], timeframe="4h")  # stored once, not collected now

    response = await client.get("/api/v1/market-data/coverage", params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    series = {s["timeframe"]: s for s in response.json()}
    assert 0 <= series["1h"]["lag_seconds"] < 3600
    assert (series["1h"]["stale"], series["1h"]["stale_after_seconds"]) == (False, 3600 + 2 * 600 + MARGIN)
    assert series["4h"]["lag_seconds"] > 2 * 86400 - 4 * 3600
    assert (series["4h"]["stale"], series["4h"]["stale_after_seconds"]) == (None, None)
