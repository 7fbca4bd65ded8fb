"""Queueing runs' jobs in Redis, many in one round trip, as arq queues one: a job id already there
(queued, running, or its result kept) is left as it is, and a job waits for its slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from backend.scheduling.queue import CollectJob, enqueue_runs
from backend.settings import Settings


async def test_jobs_are_queued_each_for_its_slot_and_an_id_already_there_is_left(
    arq_redis: ArqRedis, arq_settings: Settings
) -> None:
    queue = arq_settings.arq_queue_name
    slot = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    queued_before, kept_result = f"{queue}:queued-before", f"{queue}:kept-result"
    await arq_redis.enqueue_job("collect", 1, None, _job_id=queued_before, _queue_name=queue)
    await arq_redis.set(f"arq:result:{kept_result}", b"a kept result")

    queued = await enqueue_runs(
        arq_redis,
        [
            CollectJob(7, f"{queue}:for-its-slot", slot),
            CollectJob(8, f"{queue}:now"),
            CollectJob(9, queued_before, slot),
            CollectJob(10, kept_result, slot),
        ],
        queue_name=queue,
    )

    assert queued == [True, True, False, False]
    for_its_slot = await Job(f"{queue}:for-its-slot", arq_redis, _queue_name=queue).info()
    assert for_its_slot is not None
    assert (for_its_slot.function, for_its_slot.args) == ("collect", (7, slot))
    assert for_its_slot.score == int(slot.timestamp() * 1000) + 1  # never before the slot
    assert await Job(f"{queue}:now", arq_redis, _queue_name=queue).status() == JobStatus.queued
    before = await Job(queued_before, arq_redis, _queue_name=queue).info()
    assert before is not None
    assert before.args == (1, None)
    assert await arq_redis.zscore(queue, kept_result) is None
