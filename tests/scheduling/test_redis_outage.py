"""SCHEDULER_BACKEND=arq through a Redis outage: a throwaway redis-server is killed under two live
workers (everything queued in it is lost) and started again a few missed slots later."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.db.pool import Pool
from backend.scheduling.status import read_scheduler_status
from backend.settings import Settings
from tests.faults import ThrowawayRedis
from tests.scheduling.conftest import MakeConfig, StandInJob, StartWorker, eventually

CONFIGS = """
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days)
VALUES ('BTC/USDT', 'binance', ARRAY['1m'], 1, 1), ('ETH/USDT', 'binance', ARRAY['1m'], 1, 1)
"""
RUNS_AFTER = """
SELECT config_id, missed_slots, status, records_collected, scheduled_for FROM job_execution_logs
WHERE trigger = 'schedule' AND status <> 'running' AND started_at > $1
ORDER BY started_at
"""


class RecordingJob:
    """The real collector's run, remembering which runs this worker carried."""

    def __init__(self, job: Callable[[int], Awaitable[Any]]) -> None:
        self.job = job
        self.run_ids: list[int] = []

    async def __call__(self, run_id: int) -> Any:
        self.run_ids.append(run_id)
        return await self.job(run_id)


@pytest.fixture
async def collector(pool: Pool, collecting_settings: Settings) -> AsyncIterator[Collector]:
    exchanges = ExchangeClients(collecting_settings.exchange_overrides)
    yield Collector(pool=pool, exchanges=exchanges, settings=collecting_settings)
    await exchanges.close()


async def test_two_workers_ride_out_a_redis_outage_and_collect_the_waiting_slots_as_one_run_each(
    pool: Pool,
    collecting_settings: Settings,
    collector: Collector,
    throwaway_redis: ThrowawayRedis,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="backend.scheduling.worker")
    one, two = RecordingJob(collector.execute_run), RecordingJob(collector.execute_run)
    changes = {"redis_url": throwaway_redis.url, "exchange_overrides": collecting_settings.exchange_overrides}
    workers = [await start_worker(one, **changes), await start_worker(two, **changes)]
    await pool.execute(CONFIGS)
    await eventually(lambda: _every_config_collected_since(pool, datetime.min.replace(tzinfo=UTC)), timeout=30)

    throwaway_redis.kill()
    outage_began = await pool.fetchval("SELECT now()")
    await eventually(lambda: _slots_missed(pool, at_least=3), timeout=30)
    beats_during_outage = await pool.fetchval(
        "SELECT count(*) FROM scheduler_heartbeats WHERE backend = 'arq' AND heartbeat_at > $1", outage_began
    )
    throwaway_redis.start()
    back = await pool.fetchval("SELECT now()")
    runs_before = len(one.run_ids), len(two.run_ids)
    await eventually(lambda: _every_config_collected_since(pool, back, missed_at_least=2), timeout=30)
    await eventually(lambda: _both_took_runs_since(one, two, runs_before), timeout=30)

    assert beats_during_outage == 2
    assert all(not worker.main_task.done() for worker in workers if worker.main_task is not None)
    # per config: the run claimed ahead of its slot before the outage, whose job Redis lost, may run
    # first (queued again); then the slots due meanwhile run as one, counting the missed ones
    collapsed = {}
    for run in await pool.fetch(RUNS_AFTER, back):
        assert run["status"] == "success"
        if run["missed_slots"] >= 2:
            collapsed.setdefault(run["config_id"], run)
        elif run["config_id"] not in collapsed:
            assert run["scheduled_for"] < outage_began + timedelta(seconds=3)
    assert len(collapsed) == 2
    duplicates = await pool.fetch(
        "SELECT config_id, scheduled_for FROM job_execution_logs WHERE config_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert duplicates == []
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Redis is away") for message in messages)
    assert any(message.startswith("Redis is back") for message in messages)


async def _every_config_collected_since(pool: Pool, since: Any, *, missed_at_least: int = 0) -> bool:
    sql = (
        "SELECT count(DISTINCT config_id) FROM job_execution_logs WHERE trigger = 'schedule' "
        "AND status = 'success' AND started_at > $1 AND missed_slots >= $2"
    )
    return bool(await pool.fetchval(sql, since, missed_at_least) == 2)


async def _slots_missed(pool: Pool, *, at_least: int) -> bool:
    sql = "SELECT bool_and(next_run_at < now() - make_interval(secs => $1)) FROM data_collection_configs"
    return bool(await pool.fetchval(sql, at_least))


async def _both_took_runs_since(one: RecordingJob, two: RecordingJob, before: tuple[int, int]) -> bool:
    return len(one.run_ids) > before[0] and len(two.run_ids) > before[1]


async def test_a_worker_started_while_redis_is_down_beats_waits_for_it_and_then_runs(
    pool: Pool, make_config: MakeConfig, throwaway_redis: ThrowawayRedis, start_worker: StartWorker
) -> None:
    throwaway_redis.kill()
    config_id = await make_config(interval_minutes=60)
    worker = await start_worker(StandInJob(pool), redis_url=throwaway_redis.url)

    status = await eventually(lambda: _alive(pool))
    throwaway_redis.start()

    assert await eventually(lambda: _finished(pool, config_id), timeout=30) == "success"
    assert status.backend == "arq"
    assert worker.main_task is not None
    assert not worker.main_task.done()


async def _alive(pool: Pool) -> Any:
    status = await read_scheduler_status(pool)
    return status if status.alive else None


async def _finished(pool: Pool, config_id: int) -> Any:
    sql = "SELECT status FROM job_execution_logs WHERE config_id = $1 AND status <> 'running'"
    return await pool.fetchval(sql, config_id)
