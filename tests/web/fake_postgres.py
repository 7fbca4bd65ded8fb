"""A PostgreSQL server that refuses every connection with one error, as a real one does while it
starts up (57P03 cannot_connect_now) or shuts down (57P01 admin_shutdown).

It serves from a thread of its own: the app under test may run on another event loop."""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SSL_REQUEST_CODE = 80877103


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = (("S", "FATAL"), ("V", "FATAL"), ("C", sqlstate), ("M", message))
    body = b"".join(kind.encode() + value.encode() + b"\x00" for kind, value in fields) + b"\x00"
    return b"E" + struct.pack("!i", len(body) + 4) + body


def _read_exactly(stream: socketserver.StreamRequestHandler, size: int) -> bytes:
    data = stream.rfile.read(size)
    if len(data) < size:
        raise ConnectionError("the client went away")
    return data


@contextmanager
def refusing_postgres(sqlstate: str, message: str) -> Iterator[str]:
    """A server on a free port of 127.0.0.1 answering every startup with ``sqlstate``; yields its URL."""

    class Refuse(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                length, code = struct.unpack("!ii", _read_exactly(self, 8))
                if code == SSL_REQUEST_CODE:  # no TLS here; the client then sends its startup message
                    self.wfile.write(b"N")
                    length, code = struct.unpack("!ii", _read_exactly(self, 8))
                _read_exactly(self, length - 8)
                self.wfile.write(_error_response(sqlstate, message))
            except ConnectionError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="refusing-postgres", daemon=True)
    thread.start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{server.server_address[1]}/test"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
