"""A burst of logins next to a client polling ``/status``: how much the password checks slow it.

The app runs as in production (``python -m backend serve``, one process) on a throwaway database.
A client asks ``/status`` one request after another, first alone, then while 150 logins for unknown
emails, each from an address of its own (so that no login limit stops them before their password
is checked), arrive at once. Shown for the default ``LOGIN_CONCURRENT_PASSWORD_CHECKS`` (1) and for
checks left unbounded (as many as the burst), with how the logins were answered.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from collections import Counter

import aiohttp

from backend.auth import repository as users
from backend.auth.passwords import hash_password
from backend.db.pool import create_pool
from tests.bench.served_app import EMAIL, PASSWORD, login, serve
from tests.bench.throwaway import throwaway_database

BURST = 150
QUIET_REQUESTS = 200
STATUS = "/api/v1/admin/data-collection/status"


async def _poll_status(
    session: aiohttp.ClientSession, url: str, until: asyncio.Event | None, count: int
) -> list[float]:
    """Milliseconds of each /status, one after another: ``count`` of them, or until ``until`` is set."""
    timings = []
    while (until is None and len(timings) < count) or (until is not None and not until.is_set()):
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _burst(base: str) -> tuple[Counter[int], list[float]]:
    """150 logins at once while /status is polled; the logins' statuses and the /status timings."""
    done = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {await login(base)}"}) as polling:
        poller = asyncio.create_task(_poll_status(polling, base + STATUS, done, 0))
        async with aiohttp.ClientSession() as session:

            async def one(n: int) -> int:
                body = {"email": f"nobody-{n}@example.com", "password": "a guess"}
                headers = {"X-Forwarded-For": f"10.9.{n // 250}.{n % 250 + 1}"}
                async with session.post(f"{base}/api/v1/auth/login", json=body, headers=headers) as response:
                    return response.status

            statuses = Counter(await asyncio.gather(*(one(n) for n in range(BURST))))
        done.set()
        return statuses, await poller


async def _measure(url: str, label: str, **settings: str) -> None:
    process, base = await serve(url, LOG_LEVEL="ERROR", **settings)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {await login(base)}"}) as session:
            quiet = await _poll_status(session, base + STATUS, None, QUIET_REQUESTS)
        statuses, during = await _burst(base)
    finally:
        process.terminate()
        process.wait()
    answers = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    print(
        f"{label}: /status p50 {statistics.median(quiet):.1f} ms alone, {statistics.median(during):.1f} ms "
        f"during {BURST} logins ({len(during)} requests); logins answered {answers}"
    )


async def main() -> None:
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    async with throwaway_database("altar_bench_login") as url:
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            await users.create_user(pool, email=EMAIL, password_hash=await hash_password(PASSWORD), role="admin")
        finally:
            await pool.close()
        await _measure(url, "password checks 1 at a time (default)")
        await _measure(
            url, f"password checks unbounded ({BURST} at a time)", LOGIN_CONCURRENT_PASSWORD_CHECKS=str(BURST)
        )


if __name__ == "__main__":
    asyncio.run(main())
