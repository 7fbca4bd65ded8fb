"""Clients that start a CSV download and stop reading must not starve everyone else.

The app is served by uvicorn on a free port; each stalled client is a real socket with a small
receive buffer that sends its request and never reads, so the server's writes block for good.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from backend.app import create_app
from backend.collection import storage as candles
from backend.db.pool import Pool
from backend.settings import Settings
from tests.conftest import serving
from tests.monitoring.conftest import ADMIN_PATH

STALLED_CLIENTS = 20
# far more than the socket buffers and uvicorn's write buffer take: the server blocks on every one
EXPORT_LOGS = 10_000
EXPORT = f"{ADMIN_PATH}/execution-logs/export.csv"
OHLCV_CSV = "/api/v1/market-data/ohlcv?symbol=BTC/USDT&timeframe=1m&limit=5000&format=csv"
# the failure condition, not a measurement: the answer is expected within milliseconds
ANSWER_TIMEOUT_SECONDS = 10.0


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[str]:
    """The app (pool of 5 connections, the default) on uvicorn; its base URL. The server's send
    buffers are small, as on a slow network: a client that stops reading blocks its writes after
    a few kilobytes, whatever this kernel's buffer autotuning would otherwise absorb."""
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # inherited by accepted sockets
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=1)
    async with serving(config, sockets=[listening]) as url:
        yield url


@pytest.fixture
def stall() -> Iterator[Any]:
    """Open stalled downloads: ``stall(base_url, path, headers, count)``; all closed at the end."""
    sockets: list[socket.socket] = []

    def open_stalled(base_url: str, path: str, headers: dict[str, str], count: int) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        request += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(request.encode())
            sockets.append(sock)  # never read

    yield open_stalled
    for sock in sockets:
        sock.close()


async def _seed_logs(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO job_execution_logs (job_name, job_type, symbol, exchange, status, trigger, started_at, "
        "finished_at, duration_seconds, records_collected, error_message) "
        "SELECT 'collect_data_1', 'data_collection', 'BTC/USDT', 'binance', 'failed', 'schedule', "
        "now() - make_interval(secs => n), now() - make_interval(secs => n) + interval '2 seconds', 2.0, 0, "
        "'NetworkError: binance GET https://api.binance.com/api/v3/klines timed out after 10000 ms' "
        "FROM generate_series(1, $1) AS n",
        EXPORT_LOGS,
    )


async def _seed_candles(pool: Pool) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [(start + timedelta(minutes=n), 100.0, 101.0, 99.0, 100.5, 12.5) for n in range(5000)]
    await candles.store_candles(pool, exchange="binance", symbol="BTC/USDT", timeframe="1m", rows=rows)


async def _answers(base_url: str, headers: dict[str, str]) -> tuple[int, int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=ANSWER_TIMEOUT_SECONDS) as http:
        status = await http.get(f"{ADMIN_PATH}/status", headers=headers)
        ready = await http.get("/health/ready")
    return status.status_code, ready.status_code


@pytest.mark.parametrize(("path", "seed"), [(EXPORT, _seed_logs), (OHLCV_CSV, _seed_candles)], ids=["logs", "ohlcv"])
async def test_the_api_keeps_answering_while_20_csv_downloads_stall(
    pool: Pool,
    served: str,
    stall: Any,
    viewer_headers: dict[str, str],
    path: str,
    seed: Callable[[Pool], Awaitable[None]],
) -> None:
    await seed(pool)

    stall(served, path, viewer_headers, STALLED_CLIENTS)

    assert await _answers(served, viewer_headers) == (200, 200)
