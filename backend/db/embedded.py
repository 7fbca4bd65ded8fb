"""An embedded PostgreSQL (the ``pgserver`` package) for machines without one.

Only for local use: ``make run`` when ``DATABASE_URL`` is unset, and the test
suite when no server is reachable. The data lives under ``.data/`` so a second
start finds it again; the server stops when the process that started it ends.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / ".data"


def start_embedded_postgres(name: str = "postgres") -> str:
    """Start (or reuse) the embedded server in ``.data/<name>`` and return its URL."""
    try:
        import pgserver  # dev dependency, absent on Heroku
    except ImportError as exc:
        raise RuntimeError(
            "DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed: "
            "run `make install` or set DATABASE_URL"
        ) from exc
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    data_dir = DATA_DIR / name
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())
