"""Reading stored candles back: JSON rows, streamed CSV, and coverage that shows the holes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.collection import storage as candles
from backend.collection.collector import Collector
from backend.collection.timeframes import to_ms
from backend.db.pool import Pool

OHLCV = "/api/v1/market-data/ohlcv"
COVERAGE = "/api/v1/market-data/coverage"
START = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


async def _store_hours(pool: Pool, hours: range, timeframe: str = "1h") -> None:
    rows = [(START + h * HOUR, 100.0 + h, 101.0 + h, 99.0 + h, 100.5 + h, 2.5) for h in hours]
    await candles.store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe=timeframe, rows=rows)


async def test_ohlcv_returns_rows_oldest_first_in_ccxt_shape(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(5))

    response = await client.get(
        OHLCV, params={"symbol": "BTC/USDT", "timeframe": "1h", "start": START.isoformat()}, headers=viewer_headers
    )

    assert response.status_code == 200
    rows = response.json()
    assert [row[0] for row in rows] == [to_ms(START + h * HOUR) for h in range(5)]
    assert rows[0] == [to_ms(START), 100.0, 101.0, 99.0, 100.5, 2.5]


async def test_ohlcv_without_start_returns_the_newest_candles_oldest_first(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(10))

    response = await client.get(
        OHLCV, params={"symbol": "btc/usdt", "timeframe": "1h", "limit": 3}, headers=viewer_headers
    )

    assert [row[0] for row in response.json()] == [to_ms(START + h * HOUR) for h in (7, 8, 9)]


async def test_ohlcv_range_is_start_inclusive_end_exclusive_and_zone_less_times_are_utc(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(10))

    response = await client.get(
        OHLCV,
        params={"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-01T02:00:00", "end": "2025-01-01T05:00:00"},
        headers=viewer_headers,
    )

    assert [row[0] for row in response.json()] == [to_ms(START + h * HOUR) for h in (2, 3, 4)]


async def test_ohlcv_refuses_a_limit_above_5000_naming_it(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str]
) -> None:
    response = await client.get(
        OHLCV, params={"symbol": "BTC/USDT", "timeframe": "1h", "limit": 5001}, headers=viewer_headers
    )

    assert response.status_code == 400
    assert "limit" in response.text


async def test_ohlcv_refuses_an_unknown_timeframe(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str]
) -> None:
    response = await client.get(OHLCV, params={"symbol": "BTC/USDT", "timeframe": "7m"}, headers=viewer_headers)

    assert response.status_code == 400
    assert "timeframe" in response.text


async def test_ohlcv_needs_a_token(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get(OHLCV, params={"symbol": "BTC/USDT", "timeframe": "1h"})

    assert response.status_code == 401


async def test_ohlcv_as_csv_streams_a_header_and_the_same_rows(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(3))

    response = await client.get(
        OHLCV, params={"symbol": "BTC/USDT", "timeframe": "1h", "format": "csv"}, headers=viewer_headers
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["timestamp", "datetime", "open", "high", "low", "close", "volume"]
    assert rows[1] == [str(to_ms(START)), "2025-01-01T00:00:00Z", "100.0", "101.0", "99.0", "100.5", "2.5"]
    assert len(rows) == 4


async def test_accept_text_csv_asks_for_csv(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(2))

    response = await client.get(
        OHLCV,
        params={"symbol": "BTC/USDT", "timeframe": "1h"},
        headers={**viewer_headers, "Accept": "text/csv"},
    )

    assert response.text.startswith("timestamp,datetime,open,high,low,close,volume\r\n")


async def test_coverage_reports_counts_and_the_largest_gaps(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(0, 10))
    await _store_hours(pool, range(12, 20))
    await _store_hours(pool, range(25, 30))

    response = await client.get(COVERAGE, params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    assert response.status_code == 200
    [series] = response.json()
    assert series["timeframe"] == "1h"
    assert (series["candles"], series["expected_candles"], series["missing_candles"]) == (23, 30, 7)
    assert series["gap_count"] == 2
    assert series["largest_gaps"] == [
        {"start": "2025-01-01T20:00:00Z", "end": "2025-01-02T01:00:00Z", "missing_candles": 5},
        {"start": "2025-01-01T10:00:00Z", "end": "2025-01-01T12:00:00Z", "missing_candles": 2},
    ]


async def test_coverage_of_an_unknown_market_is_empty(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str]
) -> None:
    response = await client.get(COVERAGE, params={"symbol": "NO/PE"}, headers=viewer_headers)

    assert response.json() == []


async def test_app_lifespan_opens_a_collector_for_the_process(app: Litestar, client: AsyncTestClient[Litestar]) -> None:
    assert isinstance(app.state.collector, Collector)
    assert app.state.collector.exchanges is app.state.exchanges


async def test_ohlcv_start_between_minutes_begins_at_the_next_candle(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(5))

    response = await client.get(
        OHLCV,
        params={"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-01T01:00:00.500Z", "limit": 2},
        headers=viewer_headers,
    )

    assert [row[0] for row in response.json()] == [to_ms(START + h * HOUR) for h in (2, 3)]


async def test_ohlcv_with_an_end_far_in_the_future_returns_the_newest(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(5))

    response = await client.get(
        OHLCV,
        params={"symbol": "BTC/USDT", "timeframe": "1h", "end": "9999-12-31T00:00:00Z", "limit": 1},
        headers=viewer_headers,
    )

    assert response.status_code == 200
    assert [row[0] for row in response.json()] == [to_ms(START + 4 * HOUR)]


async def test_ohlcv_csv_without_start_streams_the_newest_candles(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(10))

    response = await client.get(
        OHLCV, params={"symbol": "BTC/USDT", "timeframe": "1h", "format": "csv", "limit": 2}, headers=viewer_headers
    )

    rows = list(csv.reader(io.StringIO(response.text)))
    assert [row[0] for row in rows[1:]] == [str(to_ms(START + h * HOUR)) for h in (8, 9)]


async def test_coverage_lists_each_timeframe_of_the_market(
    client: AsyncTestClient[Litestar], viewer_headers: dict[str, str], pool: Pool
) -> None:
    await _store_hours(pool, range(3))
    await _store_hours(pool, range(0, 5, 4), timeframe="4h")

    response = await client.get(COVERAGE, params={"symbol": "BTC/USDT"}, headers=viewer_headers)

    assert [(s["timeframe"], s["candles"], s["gap_count"]) for s in response.json()] == [("1h", 3, 0), ("4h", 2, 0)]
