"""The signing key of a development server on this machine: random, made once, kept under ``.data/``.

``python -m backend run`` (``make run``) on a loopback address without ``SECRET_KEY`` signs tokens with
it, so tokens survive restarts and no key written anywhere public is ever used. Anything else must
be given ``SECRET_KEY``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import tempfile
from pathlib import Path

from backend.db.embedded import DATA_DIR
from backend.settings import MIN_SECRET_KEY_LENGTH, SettingsError

LOCAL_SECRET_KEY_PATH = DATA_DIR / "secret_key"


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (reachable from this machine only)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(ip).split("%")[0]).is_loopback for ip in addresses)


def local_secret_key(path: Path = LOCAL_SECRET_KEY_PATH) -> str:
    """The key kept at ``path``, made the first time (random, readable by this user only). Two
    processes starting at once agree on one key: the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        os.unlink(draft)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(f"SECRET_KEY: unset, and {path} holds no usable key (delete it to make a new one)")
    return key
