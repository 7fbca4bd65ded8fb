"""`make run` without DATABASE_URL: the embedded PostgreSQL it starts stops with it, however it is stopped.

Real processes: `python -m backend run` (its embedded server's data in a directory of the test's own,
never `.data/`), stopped with real signals; the server is the PostgreSQL process its data names.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.faults import free_port

ROOT = Path(__file__).resolve().parents[2]
# `python -m backend`, with the embedded server's data where the test says
RUN = """
import sys
from pathlib import Path
import backend.db.embedded as embedded
embedded.DATA_DIR = Path(sys.argv[1])
from backend.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: pgserver runs the server as another user (see tests/faults.py)."""
    directory = Path(tempfile.mkdtemp(prefix="run-postgres-"))
    yield directory
    postgres = _postgres(directory)
    if postgres is not None:  # a failed test left it running
        postgres.terminate()
        postgres.wait(30)
    shutil.rmtree(directory, ignore_errors=True)


def _postgres(data_dir: Path) -> psutil.Process | None:
    """The PostgreSQL server running on the data in ``data_dir``, if any."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        return psutil.Process(int(pid_file.read_text().split()[0]))
    except (FileNotFoundError, psutil.NoSuchProcess):
        return None


def _stops(postgres: psutil.Process) -> bool:
    """The server stops within 30 s (a clean stop takes a fraction of that)."""
    try:
        postgres.wait(30)
    except psutil.TimeoutExpired:
        return False
    return True


def _start_run(data_dir: Path) -> subprocess.Popen[str]:
    """`python -m backend run` with DATABASE_URL unset, once it serves."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", RUN, str(data_dir), "run", "--port", str(port)],
        cwd=data_dir,  # no .env of the repository
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            "SCHEDULER_BACKEND": "off",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        output = ""
        while "serving on" not in output and process.poll() is None:
            output += process.stdout.readline()
        assert "embedded PostgreSQL" in output, output
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, output
                time.sleep(0.1)
    finally:
        watchdog.cancel()
    return process


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_stopping_the_local_run_stops_its_embedded_postgres(data_dir: Path, stop: signal.Signals) -> None:
    process = _start_run(data_dir)
    postgres = _postgres(data_dir)
    assert postgres is not None
    assert postgres.is_running()

    process.send_signal(stop)
    process.communicate(timeout=60)

    assert _stops(postgres)


def test_a_run_killed_outright_does_not_keep_postgres_running_after_the_next_one(data_dir: Path) -> None:
    killed = _start_run(data_dir)
    killed.kill()  # SIGKILL: nothing of it runs at exit, its entry stays in pgserver's list
    killed.communicate(timeout=60)
    left_running = _postgres(data_dir)
    assert left_running is not None
    assert left_running.is_running()

    process = _start_run(data_dir)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)

    assert _stops(left_running)
