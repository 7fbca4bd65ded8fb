"""Throwaway servers for fault tests: never the machine's shared PostgreSQL or Redis.

- :class:`ThrowawayPostgres`: an embedded PostgreSQL (pgserver) of the test session's own, which a
  test may stop and start again (an outage), with a migrated database per test.
- :class:`PostgresShutdownProxy`: a TCP proxy in front of it that can deliver a server's shutdown
  message (FATAL 57P01) right after the answer to a query, and close the socket a moment later, as
  PostgreSQL does to idle connections when it shuts down. The driver then finds the connection in a
  state it did not expect (asyncpg: ``InternalClientError``), every time instead of one time in N.
- :class:`ThrowawayRedis`: ``redis-server`` on a free port, without persistence, which a test may
  kill (``SIGKILL``: everything in it is lost) and start again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pgserver
import pytest

from backend.db.migrate import apply_migrations


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """An embedded PostgreSQL in a directory of its own; ``stop()`` and ``start()`` at will.

    The directory is not under pytest's ``tmp_path``: pgserver runs the server as another user, and
    every pytest session that starts on the machine closes ``/tmp/pytest-of-<user>`` to others again.
    """

    def __init__(self) -> None:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.directory = Path(tempfile.mkdtemp(prefix="throwaway-postgres-")) / "pg"
        self._server: Any = None
        self.start()
        self._socket_directory = self._server.get_uri().split("host=")[1]

    def start(self) -> None:
        if self._server is None:
            self._server = pgserver.get_server(self.directory, cleanup_mode="stop")

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop``, fast mode: every connection gets FATAL 57P01 and is closed)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    @property
    def socket_path(self) -> str:
        return f"{self._socket_directory}/.s.PGSQL.5432"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:@/{database}?host={self._socket_directory}"

    async def new_database(self) -> str:
        """A new, migrated database on this server; its URL."""
        self.start()
        name = f"fault_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.url(name)
        await apply_migrations(url)
        return url

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory.parent, ignore_errors=True)


READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


def _fatal_admin_shutdown() -> bytes:
    fields = b"SFATAL\x00VFATAL\x00C57P01\x00Mterminating connection due to administrator command\x00\x00"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


class PostgresShutdownProxy:
    """TCP on 127.0.0.1 to the throwaway server's socket; ``shutdown_after_next_reply()`` arms the fault."""

    def __init__(self, postgres: ThrowawayPostgres, *, close_after_seconds: float = 0.5) -> None:
        self.postgres = postgres
        self.close_after_seconds = close_after_seconds
        self.port = 0
        self.faults_delivered = 0
        self._armed = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def url(self, database_url: str) -> str:
        """``database_url`` (a database of the throwaway server) through this proxy."""
        database = urlsplit(database_url).path.lstrip("/")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def shutdown_after_next_reply(self) -> None:
        """The next answer that ends with ReadyForQuery, on any connection, is followed by FATAL 57P01."""
        self._armed = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(self.postgres.socket_path)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        upstream = asyncio.create_task(self._pipe(client_reader, server_writer))
        try:
            while chunk := await server_reader.read(65536):
                if self._armed and chunk.endswith(READY_FOR_QUERY, 0, len(chunk) - 1):
                    self._armed = False
                    self.faults_delivered += 1
                    client_writer.write(chunk + _fatal_admin_shutdown())
                    await client_writer.drain()
                    await asyncio.sleep(self.close_after_seconds)
                    break
                client_writer.write(chunk)
                await client_writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            upstream.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()


class ThrowawayRedis:
    """``redis-server`` on a free port, nothing saved to disk; ``kill()`` loses everything, ``start()`` again."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed (required in CI)")
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="throwaway-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it accepts connections."""
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                return
            if self._process.poll() is not None:
                pytest.fail(f"redis-server exited with {self._process.returncode}")
            time.sleep(0.05)
        pytest.fail("redis-server did not accept connections")

    def kill(self) -> None:
        """SIGKILL: no shutdown, every queued job and key is gone."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
