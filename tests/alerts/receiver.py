"""A webhook receiver on 127.0.0.1 that keeps what it was sent, and can be stopped and started again
on the same port (a chat service that goes down and comes back)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    """``received``: the JSON bodies accepted, in order. ``answer_status``: what the next posts get."""

    path: str = "/services/T000/B000/secret-token-0123456789"
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0  # posts answered with an error status
    answer_status: int = 200
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post(self.path, self._post)])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Down: the port refuses connections until ``start()``."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if self.answer_status >= 300:
            self.refused += 1
            return web.Response(status=self.answer_status, text="no")
        self.received.append(body)
        self.arrived.set()
        return web.Response(text="ok")

    def events(self) -> list[tuple[str, list[str]]]:
        """(event, subjects) of every accepted message, in order."""
        return [(body["event"], [alert["subject"] for alert in body["alerts"]]) for body in self.received]


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
