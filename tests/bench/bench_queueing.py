"""Queueing 1,000 runs' jobs in Redis, as an arq tick does after claiming 1,000 due slots: in one
round trip per 500 (the service's way) and with arq's ``enqueue_job``, one job at a time (three
round trips each), alternated; wall time and this process's CPU.

    python -m tests.bench.bench_queueing
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis, create_pool

from backend.scheduling.queue import ARQ_TIME_RESOLUTION, COLLECT_JOB, CollectJob, enqueue_runs
from backend.scheduling.worker import ENQUEUE_BATCH, redis_settings

JOBS = 1000
ROUNDS = 3
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _together(redis: ArqRedis, jobs: list[CollectJob], queue: str) -> None:
    for first in range(0, len(jobs), ENQUEUE_BATCH):
        await enqueue_runs(redis, jobs[first : first + ENQUEUE_BATCH], queue_name=queue)


async def _one_by_one(redis: ArqRedis, jobs: list[CollectJob], queue: str) -> None:
    for job in jobs:
        assert job.not_before is not None
        await redis.enqueue_job(
            COLLECT_JOB,
            job.run_id,
            job.not_before,
            _job_id=job.job_id,
            _queue_name=queue,
            _defer_until=job.not_before + ARQ_TIME_RESOLUTION,
        )


async def main() -> None:
    try:
        redis = await create_pool(redis_settings(REDIS_URL))
    except OSError as exc:
        print(f"skipped: no Redis at {REDIS_URL} ({exc})")
        return
    slot = datetime.now(UTC) + timedelta(minutes=5)
    try:
        for _ in range(ROUNDS):
            for name, queue_jobs in (("together", _together), ("arq, one by one", _one_by_one)):
                queue = f"bench-queueing:{uuid.uuid4().hex[:8]}"
                jobs = [CollectJob(n, f"{queue}:run{n}", slot) for n in range(JOBS)]
                cpu, wall = time.process_time(), time.perf_counter()
                await queue_jobs(redis, jobs, queue)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(f"{JOBS:,} jobs queued {name}: {1000 * wall:.0f} ms, this process's CPU {1000 * cpu:.0f} ms")
                keys = [key async for key in redis.scan_iter(match=f"*{queue}*")]
                await redis.delete(*keys)
        print("load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()))
    finally:
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
