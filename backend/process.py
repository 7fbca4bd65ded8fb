"""Which process this is, as logs, heartbeats and per-process metrics name it."""

from __future__ import annotations

import os
import socket


def process_identity() -> str:
    """``host:pid``: unique among live processes, the same for the life of this one."""
    return f"{socket.gethostname()}:{os.getpid()}"
