"""An embedded PostgreSQL (the ``pgserver`` package) for machines without one.

Only for local use: ``make run`` when ``DATABASE_URL`` is unset, and the test
suite when no server is reachable. The data lives under ``.data/`` so a second
start finds it again; the server stops when the process that started it ends.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[2] / ".data"


def _import_pgserver() -> Any:
    """``pgserver``, imported without the warning platformdirs prints on servers where
    XDG_RUNTIME_DIR is unset: pgserver asks for a runtime directory as it is imported, and
    platformdirs then falls back to a temporary one, which is all pgserver needs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        try:
            import pgserver  # dev dependency, absent on Heroku
        except ImportError as exc:
            raise RuntimeError(
                "DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed: "
                "run `make install` or set DATABASE_URL"
            ) from exc
    return pgserver


def start_embedded_postgres(name: str = "postgres") -> str:
    """Start (or reuse) the embedded server in ``.data/<name>`` and return its URL."""
    pgserver = _import_pgserver()
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    data_dir = DATA_DIR / name
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(server.get_uri())
