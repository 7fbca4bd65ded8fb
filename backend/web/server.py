"""The HTTP server settings of ``python -m backend serve`` and ``run``: uvicorn with headers bounded.

uvicorn's fast parser (httptools) takes request headers of any size, for as long as a client cares
to send them. :class:`BoundedHeadersProtocol` adds two bounds to it, per request:

- size: past ``HTTP_MAX_HEADER_BYTES`` (request line and headers), the answer is ``431 Request
  Header Fields Too Large`` and the connection ends; at most one more read (256 KiB) is ever held.
- time: headers not complete ``HTTP_HEADER_TIMEOUT_SECONDS`` after the request's first byte (or
  after the connection opened) end the connection, with ``408 Request Timeout`` when the client
  had begun a request.

Either way the server stops reading what the client sends (without keeping it) and closes the
connection a moment later, so that the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from backend.settings import Settings

# after answering 431 or 408, what the client still sends is read and dropped this long, then closed
LINGER_SECONDS = 2.0
TOO_LARGE = (431, b"Request Header Fields Too Large", "Request headers too large")
TOO_SLOW = (408, b"Request Timeout", "Request headers not received in time")


class BoundedHeadersProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the size and time of each request's headers bounded."""

    max_header_bytes: ClassVar[int]
    header_timeout_seconds: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_headers = True
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: dropped unread, the connection is closing
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(*TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self._header_deadline is None:
            self._start_header_deadline()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_header_deadline()
        super().on_headers_complete()

    def _start_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self._header_bytes:
            self._refuse(*TOO_SLOW)
        else:
            self.transport.close()  # an idle connection that never began a request: nothing to answer

    def _refuse(self, status: int, reason: bytes, message: str) -> None:
        """Answer ``status`` and end the connection: stop reading, send the answer and FIN, close soon."""
        self._refused = True
        self._stop_header_deadline()
        self.logger.info("%s:%d - %s", *(self.client or ("-", 0)), message)
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_headers_protocol(*, max_header_bytes: int, header_timeout_seconds: float) -> type[HttpToolsProtocol]:
    """:class:`BoundedHeadersProtocol` with these bounds (uvicorn builds one per connection)."""
    bounds = {"max_header_bytes": max_header_bytes, "header_timeout_seconds": header_timeout_seconds}
    return type("BoundedHeadersProtocol", (BoundedHeadersProtocol,), bounds)


def server_config(app: Litestar, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` as the command line serves it; ``options`` go to uvicorn."""
    protocol = bounded_headers_protocol(
        max_header_bytes=settings.http_max_header_bytes, header_timeout_seconds=settings.http_header_timeout_seconds
    )
    return uvicorn.Config(
        app,
        http=protocol,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,  # backend.log_config formats uvicorn's lines like the app's
        log_level=settings.log_level.lower(),
        # on SIGTERM open requests get 3 s, runs SHUTDOWN_GRACE_SECONDS (15), their logs 2 s: ~20 s of Heroku's 30 s
        timeout_graceful_shutdown=3,
        **options,
    )
