"""Monitoring at a million runs: the polled routes under 16 concurrent clients, with and without
If-None-Match, SQL aggregates against loading the rows and summing in Python, and the CSV export's memory.

A throwaway database (created and dropped here) gets 1,000,000 execution logs over 30 days for 200
configs, written by generate_series in one statement. The app runs as in production
(``python -m backend serve``, uvicorn, one process) in a subprocess; the load comes from ``hey``
(Debian package ``hey``: ``apt-get install hey``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
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
from tests.bench.throwaway import throwaway_database
from tests.conftest import TEST_SECRET_KEY

LOGS = 1_000_000
CONFIGS = 200
DAYS = 30
CLIENTS = 16
LOAD_SECONDS = 5
ADMIN_PATH = "/api/v1/admin/data-collection"
EMAIL = "bench@example.com"
PASSWORD = "bench password, not a secret"
ROOT = Path(__file__).resolve().parents[2]

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        await conn.execute("VACUUM ANALYZE job_execution_logs")
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

    window_rows = len(await pool.fetch(LOAD_WINDOW, since, "data_collection"))
    sql_ms = await _median_ms(lambda: repository.read_stats(pool, since=since, job_type="data_collection"), 20)
    python_ms = await _median_ms(load_and_sum, 5)
    print(f"/stats over 24 h ({window_rows:,} runs), median of repeated runs, no HTTP, no cache:")
    print(f"  one SQL query (per-minute counts + index):   {sql_ms:8.2f} ms")
    print(f"  load the rows and sum in Python (old way):   {python_ms:8.2f} ms")
    print(f"  ratio: the SQL aggregate is {python_ms / sql_ms:.0f}x faster")
    return python_ms


def _hey(
    url: str, headers: dict[str, str], *, seconds: int | None = None, requests: int | None = None
) -> dict[str, Any]:
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


def _row(name: str, figures: dict[str, Any]) -> str:
    codes = " ".join(f"{code}x{count}" for code, count in figures["codes"].items())
    latency = f"p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms"
    return f"  {name:<52} {latency}  {figures['rps']:8.0f} req/s  [{codes}]"


async def _wait_for_a_fresh_minute() -> None:
    """Tags change with the minute: start a run of a few seconds early in one."""
    if datetime.now(UTC).second > 60 - LOAD_SECONDS - 3:
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
    print(f"HTTP, {CLIENTS} concurrent clients, {LOAD_SECONDS} s per line (hey):")
    floor = _hey(f"{base}/api/v1/auth/me", auth, seconds=LOAD_SECONDS)
    print(_row("/api/v1/auth/me (floor: token check + user read)", floor))
    async with aiohttp.ClientSession() as session:
        for path, polled in routes.items():
            url = f"{base}{ADMIN_PATH}{path}"
            await _wait_for_a_fresh_minute()
            async with session.get(url, headers=auth) as response:
                etag = response.headers.get("ETag")
            results[path] = _hey(url, auth, seconds=LOAD_SECONDS)
            print(_row(path, results[path]))
            if polled and etag:
                await _wait_for_a_fresh_minute()
                async with session.get(url, headers=auth) as response:
                    etag = response.headers["ETag"]
                results[f"{path} 304"] = _hey(url, {**auth, "If-None-Match": etag}, seconds=LOAD_SECONDS)
                print(_row(f"{path}  If-None-Match", results[f"{path} 304"]))
    export = f"{base}{ADMIN_PATH}/execution-logs/export.csv?start_date={day_ago}"
    results["export"] = _hey(export, auth, requests=2 * CLIENTS)
    print(_row("/execution-logs/export.csv (one day)", results["export"]))
    return results


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


async def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SCHEDULER_BACKEND": "off",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_MAX_SIZE": "10",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{base}/health") as response:
                    if response.status == 200:
                        return process, base
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError("the app did not start")


async def _login(base: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}) as response,
    ):
        token: str = (await response.json())["access_token"]
        return token


async def main() -> None:
    if shutil.which("hey") is None:
        print("skipped: the load tool 'hey' is missing (Debian: apt-get install hey)")
        return
    async with throwaway_database("altar_bench_stats") as url:
        await _seed(url)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            await _compare_with_load_and_sum(pool)
        finally:
            await pool.close()
        process, base = await _serve(url)
        try:
            token = await _login(base)
            results = await _load_routes(base, token)
            await _export_figures(base, token, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        stats, status = results["/stats?hours=24"], results["/status"]
        not_modified = min(results[f"{path} 304"]["rps"] for path in ("/stats?hours=24", "/status"))
        print(
            f"goals: /stats p95 {stats['p95']:.1f} ms and /status p95 {status['p95']:.1f} ms (< 25 ms); "
            f"304s at {not_modified:,.0f} req/s (>= 2,000)"
        )
