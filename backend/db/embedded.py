"""An embedded PostgreSQL (the ``pgserver`` package) for machines without one.

Only for local use: ``make run`` when ``DATABASE_URL`` is unset, and the test
suite when no server is reachable. The data lives under ``.data/`` so a second
start finds it again.

pgserver keeps the ids of the processes using a server in ``.handle_pids.json``
beside its data, and the last of them to exit stops it (at exit: a process
killed by a signal it does not handle never gets there, see ``backend.cli``).
An id left there by a process that died is dropped before a start, so that it
cannot keep the server running for ever.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[2] / ".data"
HANDLES_FILE = ".handle_pids.json"  # pgserver's list of the processes using the server


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
                "`make run` installs it (requirements-local.txt), or set DATABASE_URL"
            ) from exc
    return pgserver


def _is_live_handle(pid: int, listed_at: float) -> bool:
    """The process ``pid`` is alive and may have written itself into a list last written at
    ``listed_at`` (a process started after that is another one that was given a dead one's id)."""
    import psutil  # installed with pgserver, absent on Heroku

    try:
        process = psutil.Process(pid)
        return bool(process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= listed_at)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process, which is there
        return True


def _forget_dead_handles(pgserver: Any, data_dir: Path) -> None:
    """Drop from pgserver's handle list the processes that died without removing themselves,
    under the lock pgserver itself takes to change that list."""
    path = data_dir / HANDLES_FILE
    handles = pgserver.utils.DiskList(path)
    with pgserver.PostgresServer._lock:
        if not path.exists():
            return
        listed_at = path.stat().st_mtime
        pids: list[int] = handles.get()
        live = [pid for pid in pids if _is_live_handle(pid, listed_at)]
        if live != pids:
            handles.put(live)


def start_embedded_postgres(name: str = "postgres") -> str:
    """Start (or reuse) the embedded server in ``.data/<name>`` and return its URL. It stops when
    the last process using it exits (normally, or through ``SystemExit``)."""
    pgserver = _import_pgserver()
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    data_dir = DATA_DIR / name
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgserver, data_dir)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(server.get_uri())
