"""Monitoring at a million runs: the polled routes under 16 concurrent clients, with and without
If-None-Match, SQL aggregates against loading the rows and summing in Python, and the CSV export's memory.

A throwaway database (created and dropped here) gets 1,000,000 execution logs over 30 days for 200
configs, written by generate_series in one statement. The app runs as in production
(``python -m backend serve``, uvicorn, one process) in a subprocess. Load comes from ``hey`` (Debian
package ``hey``: ``apt-get install hey``), the one load generator here: each line gets a one-second
warm-up, and the goal lines are measured three times (median shown, with the range).

"Computed" /stats is a request whose answer this process has not computed yet, because the data
changed since the last poll (at a million runs, that is every second): one client at a time, a write
bumps the data version before each request, and only the requests that came back with a tag never
seen before count. Goals: computed /stats at least 50x faster than loading the window's logs and
summing them in Python, through HTTP; 304s at 4,000 req/s or more with 16 clients.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.db.pool import Pool, create_pool
from backend.monitoring import repository
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

LOGS = 1_000_000
CONFIGS = 200
DAYS = 30
CLIENTS = 16
LOAD_SECONDS = 5
WARM_UP_SECONDS = 1
GOAL_ROUNDS = 3
COMPUTED_SAMPLES = 300
COMPUTED_WARM_UP = 30
COMPUTED_GOAL_RATIO = 50
NOT_MODIFIED_GOAL_RPS = 4000
ADMIN_PATH = "/api/v1/admin/data-collection"

SEED_CONFIGS = f"""
INSERT INTO data_collection_configs (symbol, exchange, timeframes, interval_minutes, enabled)
SELECT 'C' || n || '/USDT', 'binance', '{{1m,5m,1h}}', 10, true FROM generate_series(1, {CONFIGS}) AS n
"""
# One run every ~2.6 s over 30 days: 90 % success, 5 % failed, 5 % partial; the newest run of each
# config is still running. Triggers are skipped for the bulk load (no NOTIFY storm); the
# per-minute counts are recounted and the data version bumped once afterwards.
SEED_LOGS = f"""
INSERT INTO job_execution_logs
    (job_name, job_type, config_id, symbol, exchange, status, trigger, started_at, scheduled_for, finished_at,
     duration_seconds, records_collected, error_message, error_type, metadata)
SELECT 'collect_data_' || c, 'data_collection', c, 'C' || c || '/USDT', 'binance', status, 'schedule',
       started_at, started_at - (n % 1500) * interval '1 millisecond',
       CASE WHEN status <> 'running' THEN started_at + duration * interval '1 second' END,
       CASE WHEN status <> 'running' THEN duration END,
       CASE WHEN status = 'success' THEN 60 * (n % 3 + 1) WHEN status = 'partial' THEN 60 END,
       CASE WHEN status IN ('failed', 'partial') THEN 'fetch_ohlcv 5m: RequestTimeout, "retries" exhausted' END,
       CASE WHEN status IN ('failed', 'partial') THEN 'RequestTimeout' END,
       '{{"timeframes_collected": 3, "timeframes_failed": 0, "timeframes": ["1m", "5m", "1h"]}}'::jsonb
FROM (
    SELECT n, n % {CONFIGS} + 1 AS c,
           now() - n * (interval '{DAYS} days' / {LOGS}) AS started_at,
           0.5 + (n::bigint * 7919 % 1000) / 100.0 AS duration,
           CASE WHEN n <= {CONFIGS} THEN 'running' WHEN n % 20 = 0 THEN 'failed'
                WHEN n % 20 = 1 THEN 'partial' ELSE 'success' END AS status
    FROM generate_series(1, {LOGS}) AS n
) AS runs
"""
# what the service this replaces did for /stats: load the window's rows, count and sum in Python
LOAD_WINDOW = "SELECT * FROM job_execution_logs WHERE started_at >= $1 AND job_type = $2"
# what any write of a run does to the tag of every polled answer
BUMP_DATA_VERSION = "SELECT bump_data_version('job_execution_logs')"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(SEED_CONFIGS)
        await conn.execute(SEED_LOGS)
        await conn.execute("SET session_replication_role = origin")
        await conn.execute("SELECT recount_runs_per_minute()")
        await conn.execute("SELECT bump_data_version('job_execution_logs')")
        seeded = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE job_execution_logs, job_execution_minutes")
        vacuumed = time.perf_counter() - started - seeded
        print(
            f"seed: {LOGS:,} logs for {CONFIGS} configs over {DAYS} days in {seeded:.1f} s "
            f"(+ VACUUM ANALYZE {vacuumed:.1f} s)"
        )
        await users.create_user(conn, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
    finally:
        await conn.close()


async def _median_ms(action: Callable[[], Awaitable[Any]], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _compare_with_load_and_sum(pool: Pool) -> float:
    """Print the stats SQL against load-and-sum, both without HTTP; the load-and-sum median (ms)."""
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=24)

    async def load_and_sum() -> dict[str, Any]:
        rows = await pool.fetch(LOAD_WINDOW, since, "data_collection")
        finished = [row for row in rows if row["status"] != "running"]
        successes = sum(1 for row in rows if row["status"] == "success")
        durations = [row["duration_seconds"] for row in finished if row["duration_seconds"] is not None]
        return {
            "total": len(rows),
            "success_rate": round(100 * successes / len(finished), 2) if finished else 0.0,
            "average_duration": sum(durations) / len(durations) if durations else None,
            "records": sum(row["records_collected"] or 0 for row in rows),
        }

    window_rows = len(await pool.fetch(LOAD_WINDOW, since, "data_collection"))  # also the warm-up
    sql_ms = await _median_ms(lambda: repository.read_stats(pool, since=since, job_type="data_collection"), 50)
    python_ms = await _median_ms(load_and_sum, 9)
    print(f"/stats over 24 h ({window_rows:,} runs), median of repeated runs, no HTTP, no cache:")
    print(f"  one SQL query (per-minute counts + index):   {sql_ms:8.2f} ms")
    print(f"  load the rows and sum in Python (old way):   {python_ms:8.2f} ms")
    print(f"  ratio: the SQL aggregate is {python_ms / sql_ms:.0f}x faster")
    return python_ms


def _hey(
    url: str, headers: dict[str, str], *, seconds: int | None = None, requests: int | None = None
) -> dict[str, Any]:
    """One ``hey`` run with ``CLIENTS`` concurrent clients: p50, p95 (ms), req/s and responses by status."""
    command = ["hey", "-c", str(CLIENTS), "-disable-compression"]
    command += ["-z", f"{seconds}s"] if seconds else ["-n", str(requests)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=600).stdout
    percentile = {m[0]: float(m[1]) * 1000 for m in re.findall(r"(\d+)%+ in ([\d.]+) secs", output)}
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return {
        "p50": percentile.get("50"),
        "p95": percentile.get("95"),
        "rps": float(rate[1]) if rate else 0.0,
        "codes": codes,
    }


def _load(url: str, headers: dict[str, str], *, rounds: int = 1) -> dict[str, Any]:
    """A warm-up, then ``rounds`` timed runs: the run with the median req/s, and the range of req/s."""
    _hey(url, headers, seconds=WARM_UP_SECONDS)
    runs = sorted((_hey(url, headers, seconds=LOAD_SECONDS) for _ in range(rounds)), key=lambda run: run["rps"])
    return {**runs[len(runs) // 2], "range": (runs[0]["rps"], runs[-1]["rps"])}


def _row(name: str, figures: dict[str, Any]) -> str:
    codes = " ".join(f"{code}x{count}" for code, count in figures["codes"].items())
    latency = f"p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms"
    low, high = figures.get("range", (figures["rps"], figures["rps"]))
    spread = f" ({low:,.0f}-{high:,.0f})" if high > low else ""
    return f"  {name:<52} {latency}  {figures['rps']:8.0f} req/s{spread}  [{codes}]"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def _wait_for_a_fresh_minute(rounds: int = 1) -> None:
    """Tags change with the minute: start the warm-up and ``rounds`` runs early enough in one."""
    if datetime.now(UTC).second > 60 - WARM_UP_SECONDS - rounds * LOAD_SECONDS - 3:
        await asyncio.sleep(61 - datetime.now(UTC).second)


async def _load_routes(base: str, token: str) -> dict[str, dict[str, Any]]:
    auth = {"Authorization": f"Bearer {token}"}
    day_ago = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    routes = {
        "/stats?hours=24": True,
        "/status": True,
        "/stats/timeseries?hours=168&bucket=1h": True,
        "/execution-logs?status=failed&limit=100": False,
    }
    results: dict[str, dict[str, Any]] = {}
    print(
        f"HTTP, {CLIENTS} concurrent clients (hey), {WARM_UP_SECONDS} s warm-up then {LOAD_SECONDS} s per line; "
        f"304 lines: median of {GOAL_ROUNDS} runs (range); {_uptime()}"
    )
    floor = _load(f"{base}/api/v1/auth/me", auth)
    print(_row("/api/v1/auth/me (floor: the token check)", floor))
    async with aiohttp.ClientSession() as session:
        for path, polled in routes.items():
            url = f"{base}{ADMIN_PATH}{path}"
            await _wait_for_a_fresh_minute()
            async with session.get(url, headers=auth) as response:
                etag = response.headers.get("ETag")
            results[path] = _load(url, auth)
            print(_row(path, results[path]))
            if polled and etag:
                await _wait_for_a_fresh_minute(GOAL_ROUNDS)
                async with session.get(url, headers=auth) as response:
                    etag = response.headers["ETag"]
                results[f"{path} 304"] = _load(url, {**auth, "If-None-Match": etag}, rounds=GOAL_ROUNDS)
                print(_row(f"{path}  If-None-Match", results[f"{path} 304"]))
    export = f"{base}{ADMIN_PATH}/execution-logs/export.csv?start_date={day_ago}"
    results["export"] = _hey(export, auth, requests=2 * CLIENTS)
    print(_row("/execution-logs/export.csv (one day)", results["export"]))
    return results


async def _computed_stats_ms(base: str, token: str, url: str) -> list[float]:
    """Times (ms) of /stats?hours=24 requests that had to be computed, one client, one after another.

    Before each request a write bumps the data version; a request whose answer carries a tag seen
    before was answered from the cache (the notification had not arrived yet) and does not count.
    """
    stats_url = f"{base}{ADMIN_PATH}/stats?hours=24"
    headers = {"Authorization": f"Bearer {token}"}
    writer = await asyncpg.connect(url)
    seen: set[str] = set()
    times: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            while len(times) < COMPUTED_WARM_UP + COMPUTED_SAMPLES:
                await writer.execute(BUMP_DATA_VERSION)
                await asyncio.sleep(0.005)  # the notification reaches the server
                started = time.perf_counter()
                async with session.get(stats_url, headers=headers) as response:
                    await response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.headers["ETag"] not in seen:
                    seen.add(response.headers["ETag"])
                    times.append(elapsed)
    finally:
        await writer.close()
    return times[COMPUTED_WARM_UP:]


def _sample_rss(pid: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss_mb(pid))
        time.sleep(0.02)


async def _export_memory(base: str, token: str, pid: int, start_date: str) -> tuple[int, int, float, float, float]:
    """Rows and bytes of one export, its time, and the server's RSS before and at its peak (MB)."""
    stop, peak = threading.Event(), [0.0]
    before = _rss_mb(pid)
    sampler = threading.Thread(target=_sample_rss, args=(pid, stop, peak), daemon=True)
    sampler.start()
    started = time.perf_counter()
    size = lines = 0
    url = f"{base}{ADMIN_PATH}/execution-logs/export.csv?start_date={start_date}"
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\r\n")
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    return lines - 1, size, elapsed, before, peak[0]


async def _export_figures(base: str, token: str, pid: int) -> None:
    print("CSV export, one request, server memory (RSS) sampled every 20 ms:")
    now = datetime.now(UTC)
    for label, since in (("3 days", now - timedelta(days=3)), ("all 30 days", now - timedelta(days=DAYS + 1))):
        rows, size, elapsed, before, peak = await _export_memory(base, token, pid, since.strftime("%Y-%m-%dT%H:%M:%SZ"))
        print(
            f"  {label:<12} {rows:>9,} rows  {size / 1e6:7.1f} MB in {elapsed:5.1f} s ({rows / elapsed:,.0f} rows/s)"
            f"  RSS {before:.0f} MB before, {peak:.0f} MB peak (+{peak - before:.0f} MB)"
        )


async def main() -> None:
    if shutil.which("hey") is None:
        print("skipped: the load tool 'hey' is missing (Debian: apt-get install hey)")
        return
    async with throwaway_database("altar_bench_stats") as url:
        await _seed(url)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            load_and_sum_ms = await _compare_with_load_and_sum(pool)
        finally:
            await pool.close()
        process, base = await serve(url)
        try:
            token = await login(base)
            computed = await _computed_stats_ms(base, token, url)
            computed_p50 = statistics.median(computed)
            computed_p95 = statistics.quantiles(computed, n=20)[-1]
            print(
                f"/stats?hours=24 computed (data changed since the last poll), through HTTP, one client, "
                f"{len(computed)} requests: p50 {computed_p50:.2f} ms, p95 {computed_p95:.2f} ms"
            )
            results = await _load_routes(base, token)
            await _export_figures(base, token, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        stats, status = results["/stats?hours=24"], results["/status"]
        not_modified = min(results[f"{path} 304"]["rps"] for path in ("/stats?hours=24", "/status"))
        print(f"goals ({_uptime()}):")
        print(
            f"  computed /stats through HTTP vs load-and-sum: {load_and_sum_ms / computed_p50:.0f}x "
            f"({load_and_sum_ms:.0f} ms / {computed_p50:.2f} ms; goal >= {COMPUTED_GOAL_RATIO}x)"
        )
        print(
            f"  304s with {CLIENTS} clients: {not_modified:,.0f} req/s, the slower of /stats and /status "
            f"({not_modified / NOT_MODIFIED_GOAL_RPS:.2f}x the goal of >= {NOT_MODIFIED_GOAL_RPS:,})"
        )
        print(f"  /stats p95 {stats['p95']:.1f} ms and /status p95 {status['p95']:.1f} ms ({CLIENTS} clients; < 25 ms)")
