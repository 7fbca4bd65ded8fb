"""Request headers are bounded in size (431) and in time (408 or a closed connection), by the server
as ``python -m backend serve`` and ``run`` configure it, while normal clients keep being served."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.settings import Settings
from backend.web.server import server_config
from tests.conftest import TEST_SECRET_KEY, serving
from tests.faults import free_port

MAX_HEADER_BYTES = 65_536  # HTTP_MAX_HEADER_BYTES (default)
FIFTY_MEGABYTES = 50 * 1024 * 1024
CHUNK = b"a" * 65_536
PARTIAL_REQUEST = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: "
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """The app served as the command line serves it, headers given one second; its host and port."""
    quick = replace(settings, http_header_timeout_seconds=1)
    async with serving(server_config(create_app(quick), quick, host="127.0.0.1", port=0)) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


async def _send_huge_header(host: str, port: int) -> tuple[bytes, int]:
    """A header of 50 MB, sent until the server answers; the answer and the bytes sent by then."""
    reader, writer = await asyncio.open_connection(host, port)
    answer = asyncio.create_task(reader.read())  # everything up to the server's end of the stream
    sent = 0
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
    with contextlib.suppress(ConnectionError):
        while sent < FIFTY_MEGABYTES and not answer.done():
            writer.write(CHUNK)
            await writer.drain()
            sent += len(CHUNK)
    async with asyncio.timeout(30):
        response = await answer
    writer.close()
    return response, sent


async def _open_unfinished(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(PARTIAL_REQUEST)
    await writer.drain()
    return reader, writer


async def test_a_fifty_megabyte_header_is_refused_with_431_long_before_it_is_sent(server: tuple[str, int]) -> None:
    response, sent = await _send_huge_header(*server)

    assert response.startswith(b"HTTP/1.1 431 ")
    assert response.endswith(b"Request headers too large")
    assert sent < FIFTY_MEGABYTES // 2  # answered while most of it was still to come


async def test_headers_just_under_the_limit_are_served(server: tuple[str, int]) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        response = await http.get("/health", headers={"X-Large": "a" * (MAX_HEADER_BYTES - 2048)})

    assert response.status_code == 200


async def test_a_body_larger_than_the_header_limit_is_not_refused_for_its_size(server: tuple[str, int]) -> None:
    host, port = server
    body = b'{"email": "a@example.com", "password": "' + b"p" * (4 * MAX_HEADER_BYTES) + b'"}'
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        response = await http.post("/api/v1/auth/login", content=body)

    assert response.status_code == 400
    assert response.json()["extra"][0]["key"] == "password"


async def test_headers_not_finished_in_time_answer_408_and_close(server: tuple[str, int]) -> None:
    reader, writer = await _open_unfinished(*server)

    async with asyncio.timeout(30):
        response = await reader.read()

    writer.close()
    assert response.startswith(b"HTTP/1.1 408 ")


async def test_a_connection_that_never_sends_a_request_is_closed_without_an_answer(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)

    async with asyncio.timeout(30):
        response = await reader.read()

    writer.close()
    assert response == b""


async def test_a_kept_alive_connection_that_begins_a_request_and_stalls_is_closed(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    first = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in first.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)

    writer.write(PARTIAL_REQUEST)
    async with asyncio.timeout(30):
        second = await reader.read()

    writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 408 ")


async def test_a_normal_client_is_served_while_hundreds_of_connections_stall_in_their_headers(
    server: tuple[str, int],
) -> None:
    host, port = server
    stalled = [await _open_unfinished(host, port) for _ in range(300)]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            health = await http.get("/health")

        async with asyncio.timeout(60):
            answers = await asyncio.gather(*(reader.read() for reader, _ in stalled))
    finally:
        for _, writer in stalled:
            writer.close()

    assert health.status_code == 200
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


def _resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


async def test_eight_fifty_megabyte_headers_at_once_leave_the_web_process_its_size(
    pool: object, database_url: str
) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SCHEDULER_BACKEND": "off",
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "backend", "serve", "--port", str(port)]
    web = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            before = _resident_kib(web.pid)

            answers = await asyncio.gather(*(_send_huge_header("127.0.0.1", port) for _ in range(8)))

            after = _resident_kib(web.pid)
            health = await http.get("/health")
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=30)

    assert all(response.startswith(b"HTTP/1.1 431 ") for response, _ in answers)
    assert health.status_code == 200
    assert after - before < 32 * 1024  # KiB: far from the 50 MB each header would have cost
