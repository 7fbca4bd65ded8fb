"""The cost of one incremental run: SQL statements the app sends, and CPU of the service's process
and of PostgreSQL, per run.

``CONFIGS`` configs of one 1m series each, through the scheduler's path without its sleeps: claim
the due slots and start their runs (one transaction), then the real collector against the fake
Binance, ``MAX_CONCURRENT_JOBS`` runs at a time. A first round stores a few minutes of history; the
clock (the collector's and the fake's) then moves one minute and the measured round fetches and
stores one new candle per run, as a series that is up to date does every minute.

The fake Binance runs in a process of its own (:mod:`tests.bench.fake_process`): this process is
the service's part (collector, ccxt, asyncpg), the figure the goal speaks of with PostgreSQL's; the
fake's CPU, serving the requests, is printed on a line apart.

Statements are counted as the app sends them (each ``fetch``/``execute``/``COPY``, ``BEGIN`` and
``COMMIT`` included): PostgreSQL here has no ``pg_stat_statements``, so the statements its
triggers and functions run are not counted, but their CPU is in PostgreSQL's figure (the CPU of
the pool's server processes, read from ``/proc``), and in that of the statement that fired them.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from backend.collection.collector import Collector
from backend.collection.exchanges import ExchangeClients
from backend.collection.repository import create_partitions
from backend.collection.timeframes import to_minute, to_ms
from backend.db.pool import Pool, create_pool
from backend.scheduling.runs import claim_and_start_runs
from backend.settings import Settings
from tests.bench.fake_process import fake_binance_process
from tests.bench.throwaway import throwaway_database

CONFIGS = 300
POOL_SIZE = 8
HISTORY_MINUTES = 5
GOAL_CPU_MS = 3.0  # web and PostgreSQL together, per incremental run
INSERT_CONFIGS = """
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, backfill_days)
SELECT 'R' || n || '/USDT', 'binance', ARRAY['1m'], 1, 1 FROM generate_series(0, $1 - 1) AS n
"""
ALL_DUE = "UPDATE data_collection_configs SET next_run_at = now() - interval '1 second'"
CANDLES_OF_ROUND = """
SELECT count(*) FILTER (WHERE status = 'success') AS succeeded, coalesce(sum(records_collected), 0) AS candles
FROM job_execution_logs WHERE id = ANY($1::bigint[])
"""


_SCHEDSTATS: dict[int, int | None] = {}  # pid: its /proc/<pid>/schedstat kept open (None: not readable)


def server_cpu_ns(pid: int) -> int | None:
    """Nanoseconds of CPU the process has used so far (Linux's scheduler statistics, read with one
    system call: the benchmark's own CPU stays what it measures); None elsewhere."""
    if pid not in _SCHEDSTATS:
        try:
            _SCHEDSTATS[pid] = os.open(f"/proc/{pid}/schedstat", os.O_RDONLY)
        except OSError:
            _SCHEDSTATS[pid] = None
    fd = _SCHEDSTATS[pid]
    return None if fd is None else int(os.pread(fd, 64, 0).split()[0])


def close_schedstats() -> None:
    for fd in _SCHEDSTATS.values():
        if fd is not None:
            os.close(fd)
    _SCHEDSTATS.clear()


class CountingConnection(asyncpg.Connection):  # type: ignore[type-arg]
    """Counts every statement this connection sends, by its first words, with the CPU its server
    process spent on it (triggers and the commit of an autocommitted statement included): the
    server process works for this connection alone, and only while a statement is under way."""

    counts: collections.Counter[str] = collections.Counter()
    server_ns: collections.Counter[str] = collections.Counter()

    async def _counted(self, query: str, statement: Awaitable[Any]) -> Any:
        key = " ".join(query.split())[:60]
        CountingConnection.counts[key] += 1
        before = server_cpu_ns(self.get_server_pid())
        try:
            return await statement
        finally:
            after = server_cpu_ns(self.get_server_pid())
            if before is not None and after is not None:
                CountingConnection.server_ns[key] += after - before

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._counted(query, super().execute(query, *args, **kwargs))

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> Any:
        return await self._counted(command, super().executemany(command, args, **kwargs))

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._counted(query, super().fetch(query, *args, **kwargs))

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._counted(query, super().fetchrow(query, *args, **kwargs))

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return await self._counted(query, super().fetchval(query, *args, **kwargs))

    async def copy_records_to_table(self, table_name: str, **kwargs: Any) -> Any:
        return await self._counted(f"COPY {table_name}", super().copy_records_to_table(table_name, **kwargs))


def _load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


async def server_pids(pool: Pool) -> list[int]:
    """The PostgreSQL server process of each of the pool's connections (all held at once)."""
    connections = [await pool.acquire() for _ in range(POOL_SIZE)]
    try:
        return [await conn.fetchval("SELECT pg_backend_pid()") for conn in connections]
    finally:
        for conn in connections:
            await pool.release(conn)


def cpu_seconds(pids: list[int]) -> float | None:
    """User and system CPU of these processes so far; None when /proc does not show them."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        return None
    return total / ticks


async def create_partitions_ahead(url: str) -> None:
    """The 1m partitions of these days, made before the first runs, so that creating them is not part
    of what is measured."""
    pool = await create_pool(url)
    now = datetime.now(UTC)
    await create_partitions(
        pool, timeframe="1m", first=to_minute(now - timedelta(days=2)), last=to_minute(now + timedelta(days=1))
    )
    await pool.close()


async def _round(pool: Pool, collector: Collector) -> list[int]:
    """Claim every due slot, start the runs, and carry them to their end, POOL_SIZE at a time."""
    await pool.execute(ALL_DUE)
    started = await claim_and_start_runs(pool, limit=CONFIGS, interval_unit_seconds=60)
    queue = [run.run_id for run in started]

    async def worker() -> None:
        while queue:
            await collector.execute_run(queue.pop())

    await asyncio.gather(*(worker() for _ in range(POOL_SIZE)))
    return [run.run_id for run in started]


async def bench_run_cost(url: str) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    clock = [now]
    symbols = [f"R{n}/USDT" for n in range(CONFIGS)]
    start_ms = to_ms(now - timedelta(minutes=HISTORY_MINUTES))
    await create_partitions_ahead(url)
    async with fake_binance_process(symbols, history_start_ms=start_ms, now_ms=to_ms(clock[0])) as fake:
        settings = Settings(app_env="test", database_url=url, exchange_overrides=fake.exchange_overrides)
        pool = await create_pool(url, min_size=POOL_SIZE, max_size=POOL_SIZE, connection_class=CountingConnection)
        exchanges = ExchangeClients(settings.exchange_overrides)
        await exchanges.get("binance").ensure_markets()
        collector = Collector(pool=pool, exchanges=exchanges, settings=settings, clock=lambda: clock[0])
        try:
            await pool.execute(INSERT_CONFIGS, CONFIGS)
            await _round(pool, collector)  # the series are created, a few minutes of history stored
            clock[0] += timedelta(minutes=1)  # one new closed candle per series
            await fake.advance(60_000)  # the fake's clock with the collector's
            pids = await server_pids(pool)
            CountingConnection.counts.clear()
            CountingConnection.server_ns.clear()
            fake_cpu = await fake.cpu_seconds()
            server_cpu, cpu, wall = cpu_seconds(pids), time.process_time(), time.monotonic()
            run_ids = await _round(pool, collector)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            server_after = cpu_seconds(pids)
            fake_cpu = await fake.cpu_seconds() - fake_cpu
            counts = collections.Counter(CountingConnection.counts)
            statement_ns = collections.Counter(CountingConnection.server_ns)
            result = await pool.fetchrow(CANDLES_OF_ROUND, run_ids)
        finally:
            await exchanges.close()
            await pool.close()
            close_schedstats()
    assert result is not None
    runs = len(run_ids)
    statements = sum(counts.values())
    print(
        f"{runs} incremental runs (one 1m series each, one new candle: {result['candles']} candles stored, "
        f"{result['succeeded']} succeeded) in {wall:.2f} s; {_load()}"
    )
    print(
        f"  SQL statements sent by the app per run: {statements / runs:.1f} (each: per run, and PostgreSQL's CPU on it)"
    )
    for text, count in counts.most_common():
        server_ms = f"{statement_ns[text] / runs / 1e6:5.3f} ms" if statement_ns else "  -  "
        print(f"    {count / runs:5.2f}  {server_ms}  {re.sub(' +', ' ', text)}")
    server = None if server_cpu is None or server_after is None else server_after - server_cpu
    server_text = "not readable" if server is None else f"{1000 * server / runs:.2f} ms"
    total = 1000 * (cpu + (server or 0)) / runs
    print(
        f"  CPU per run: the service (collector, ccxt, asyncpg) {1000 * cpu / runs:.2f} ms, "
        f"PostgreSQL {server_text}; together {total:.2f} ms (goal about {GOAL_CPU_MS:.0f} ms: "
        f"{total / GOAL_CPU_MS:.2f}x)"
    )
    print(
        f"  CPU per run of the fake Binance (its own process, not in the figure above): {1000 * fake_cpu / runs:.2f} ms"
    )


async def main() -> None:
    async with throwaway_database("altar_bench") as url:
        await bench_run_cost(url)
