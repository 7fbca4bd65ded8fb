"""The app as production runs it (``python -m backend serve``, uvicorn, one process), for benchmarks
that measure through HTTP, and a login as the benchmarks' admin."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import TEST_SECRET_KEY
from tests.faults import free_port

EMAIL = "bench@example.com"
PASSWORD = "bench password, not a secret"
ROOT = Path(__file__).resolve().parents[2]


async def serve(url: str, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """The app on database ``url`` in a subprocess (no scheduler, no Redis; ``settings`` are more
    environment variables): the process and its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SCHEDULER_BACKEND": "off",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_MAX_SIZE": "10",
        **settings,
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


async def login(base: str) -> str:
    """An access token of the user ``EMAIL`` (created by the benchmark) from the app at ``base``."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}) as response,
    ):
        token: str = (await response.json())["access_token"]
        return token
