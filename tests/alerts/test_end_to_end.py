"""Alerts end to end: real runs failing against the fake Binance, real processes evaluating at the same
time, and a real webhook receiver that goes down and comes back.

- Two web processes (each its own app and pool, both scheduling and both evaluating every second)
  collect a config whose exchange answers errors: its alert fires once, is reminded of while the
  receiver is down (delivered when it is back), and resolves once the exchange answers again.
- arq workers killed without shutting down (SIGKILL): the web process in arq mode, or the worker's
  surviving sibling, announces it, and a new worker resolves it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db.pool import Pool
from backend.settings import Settings
from tests.alerts.receiver import Receiver
from tests.collection.fake_binance import FakeBinance, running_fake_binance
from tests.conftest import _login
from tests.scheduling.conftest import eventually

CONFIGS = "/api/v1/admin/data-collection/configs"
ROOT = Path(__file__).resolve().parents[2]
OUTBOX = "SELECT id, kind, attempts, delivered_at IS NOT NULL AS delivered FROM alert_notifications ORDER BY id"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with running_fake_binance(["BTC/USDT"]) as server:
        yield server


@pytest.fixture
def process_settings(settings: Settings, receiver: Receiver, fake: FakeBinance) -> Settings:
    """A web process that schedules (one interval minute lasts a second), collects from the fake, and
    evaluates every second: a config alerts after 2 failed runs, reminders every 3 s."""
    return replace(
        settings,
        scheduler_backend="inprocess",
        interval_unit_seconds=1,
        scheduler_heartbeat_seconds=1,
        run_heartbeat_seconds=1,
        exchange_overrides=fake.exchange_overrides(),
        exchange_retry_base_ms=10,
        exchange_max_retries=1,
        alert_webhook_url=receiver.url,
        alert_evaluation_seconds=1,
        alert_failed_runs=2,
        alert_reminder_seconds=3,
        alert_webhook_retry_max_seconds=1,
        alert_missed_slots=1_000_000,  # a loaded machine may start a run late: not what this test is about
        freshness_margin_seconds=3600,  # nor is the series' freshness
    )


async def outbox(pool: Pool) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch(OUTBOX)]


async def test_two_web_processes_announce_a_failing_config_once_remind_through_an_outage_and_resolve(
    pool: Pool, process_settings: Settings, receiver: Receiver, fake: FakeBinance
) -> None:
    fake.fail_candles(503, times=1_000_000)
    async with (
        AsyncTestClient(app=create_app(process_settings)) as first,
        AsyncTestClient(app=create_app(process_settings)) as second,
    ):
        token = await _login(first, pool, "admin@example.com", "admin")
        body = {"symbol": "BTC/USDT", "timeframes": ["1m"], "interval_minutes": 2, "backfill_days": 1}
        response = await first.post(CONFIGS, json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        subject = f"config:{response.json()['id']}"

        async def fired_and_delivered() -> bool:
            return bool(receiver.received) and all(message["delivered"] for message in await outbox(pool))

        await eventually(fired_and_delivered, timeout=30)
        await receiver.stop()

        async def reminder_retried() -> bool:
            return any(m["kind"] == "reminder" and m["attempts"] >= 2 for m in await outbox(pool))

        await eventually(reminder_retried, timeout=30)
        await receiver.start()
        await eventually(lambda: _received(receiver, "reminder"), timeout=30)
        fake.clear_failures()
        await eventually(lambda: _received(receiver, "resolved"), timeout=30)
        await second.get("/health")  # both processes were up throughout

    events = receiver.events()
    assert events[0] == ("firing", [subject])
    assert events[-1] == ("resolved", [subject])
    assert events[1:-1] == [("reminder", [subject])] * (len(events) - 2) != []
    ids = [message["notification_id"] for message in receiver.received]
    assert ids == sorted(set(ids))
    assert all(message["delivered"] for message in await outbox(pool))
    assert len(await outbox(pool)) == len(ids)
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE rule = 'config_failing'") == 1


async def _received(receiver: Receiver, event: str) -> bool:
    return any(body["event"] == event for body in receiver.received)


@pytest.fixture
def worker_environment(settings: Settings, receiver: Receiver, redis_url: str) -> dict[str, str]:
    """``python -m backend worker`` beating every second, evaluating every second, posting to the receiver."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": redis_url,
        "SCHEDULER_BACKEND": "arq",
        "ARQ_QUEUE_NAME": f"test-alerts:{uuid.uuid4().hex[:10]}",
        "SCHEDULER_HEARTBEAT_SECONDS": "1",
        "ALERT_EVALUATION_SECONDS": "1",
        "ALERT_SCHEDULER_SILENT_SECONDS": "3",
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_RETRY_MAX_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }


class Workers:
    """Worker processes of this test; each one still running is stopped (SIGTERM) at the end."""

    def __init__(self, pool: Pool, environment: dict[str, str]) -> None:
        self.pool = pool
        self.environment = environment
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self) -> str:
        """Start a worker; its scheduler id once it beats."""
        before = set(await self._beating())
        command = [sys.executable, "-m", "backend", "worker"]
        self.processes.append(
            subprocess.Popen(command, cwd=ROOT, env=self.environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )

        async def new_one() -> set[str]:
            return set(await self._beating()) - before

        [scheduler_id] = await eventually(new_one, timeout=30)
        return scheduler_id

    def kill(self, index: int) -> None:
        """SIGKILL: no shutdown, its heartbeat row stays behind."""
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    async def _beating(self) -> list[str]:
        rows = await self.pool.fetch("SELECT scheduler_id FROM scheduler_heartbeats WHERE backend = 'arq'")
        return [row["scheduler_id"] for row in rows]

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


@pytest.fixture
def workers(pool: Pool, worker_environment: dict[str, str]) -> Iterator[Workers]:
    started = Workers(pool, worker_environment)
    yield started
    started.stop_all()


async def firing_for(receiver: Receiver, subject: str) -> dict[str, Any]:
    async def message() -> dict[str, Any] | None:
        return next((m for m in receiver.received if (m["event"], [subject]) == ("firing", _subjects(m))), None)

    found: dict[str, Any] = await eventually(message, timeout=30)
    return found


def _subjects(message: dict[str, Any]) -> list[str]:
    return [alert["subject"] for alert in message["alerts"]]


async def test_a_killed_worker_is_announced_by_the_web_process_in_arq_mode_and_resolved_by_its_successor(
    pool: Pool,
    settings: Settings,
    receiver: Receiver,
    redis_url: str,
    workers: Workers,
    worker_environment: dict[str, str],
) -> None:
    web = replace(
        settings,
        scheduler_backend="arq",
        redis_url=redis_url,
        arq_queue_name=worker_environment["ARQ_QUEUE_NAME"],
        scheduler_heartbeat_seconds=1,
        alert_webhook_url=receiver.url,
        alert_evaluation_seconds=1,
        alert_scheduler_silent_seconds=3,
        alert_webhook_retry_max_seconds=1,
    )
    async with AsyncTestClient(app=create_app(web)):
        killed = await workers.start()
        workers.kill(0)

        message = await firing_for(receiver, f"scheduler:{killed}")
        assert "did not shut down; no scheduler alive" in message["text"]

        await workers.start()
        await eventually(lambda: _received(receiver, "resolved"), timeout=30)

    assert receiver.events() == [("firing", [f"scheduler:{killed}"]), ("resolved", [f"scheduler:{killed}"])]


async def test_a_worker_announces_its_sibling_killed_without_shutting_down(
    pool: Pool, receiver: Receiver, workers: Workers
) -> None:
    await workers.start()
    killed = await workers.start()
    workers.kill(1)

    message = await firing_for(receiver, f"scheduler:{killed}")

    assert "did not shut down; 1 other scheduler alive" in message["text"]
    await asyncio.sleep(1.5)  # another evaluation or two: nothing new to say
    assert receiver.events() == [("firing", [f"scheduler:{killed}"])]
