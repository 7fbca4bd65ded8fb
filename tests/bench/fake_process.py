"""The fake Binance in a process of its own, so that a benchmark's CPU figure is the service's alone.

    async with fake_binance_process(symbols, history_start_ms=start_ms, now_ms=now_ms) as fake:
        settings = Settings(..., exchange_overrides=fake.exchange_overrides)
        await fake.advance(60_000)                 # the fake's clock moves one minute
        cpu = await fake.cpu_seconds()             # the fake's process CPU so far

The child runs ``python -m tests.bench.fake_process`` and reads its symbols and knobs as one JSON
line on its standard input (ten thousand symbols do not fit in one command-line argument): it
serves :func:`tests.collection.fake_binance.running_fake_binance` with them and a clock frozen at
``now_ms``, prints its exchange overrides as one JSON line, then answers one line per command
read on its standard input: ``advance <ms>`` moves its clock (answer ``ok``), ``cpu`` gives its
process's user and system CPU in seconds. The fake's HTTP surface stays exactly Binance's. The
child ends when its standard input closes, so it does not outlive the benchmark, also when the
benchmark fails or is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from tests.collection.fake_binance import running_fake_binance

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
EXIT_SECONDS = 5


class FakeBinanceProcess:
    """The parent's handle on the child: its pid, its exchange overrides, and its two commands."""

    def __init__(self, process: asyncio.subprocess.Process, exchange_overrides: dict[str, Any]) -> None:
        self.process = process
        self.pid = process.pid
        self.exchange_overrides = exchange_overrides

    async def _ask(self, command: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()
        async with asyncio.timeout(STARTUP_SECONDS):
            answer = (await self.process.stdout.readline()).decode().strip()
        if not answer:
            raise RuntimeError(f"the fake Binance process ended (exit code {self.process.returncode})")
        return answer

    async def advance(self, ms: int) -> None:
        """Move the fake's clock ``ms`` milliseconds forward (answered once done)."""
        answer = await self._ask(f"advance {ms}")
        if answer != "ok":
            raise RuntimeError(f"the fake Binance process answered {answer!r} to advance")

    async def cpu_seconds(self) -> float:
        """User and system CPU the fake's process has used so far."""
        return float(await self._ask("cpu"))


@asynccontextmanager
async def fake_binance_process(
    symbols: Iterable[str], *, now_ms: int, **knobs: Any
) -> AsyncIterator[FakeBinanceProcess]:
    """Run the fake Binance serving ``symbols`` in a child process for the duration of the block.

    ``now_ms`` is the fake's clock when it starts (moved by :meth:`FakeBinanceProcess.advance`);
    ``knobs`` are other :class:`tests.collection.fake_binance.FakeBinance` knobs with JSON values
    (``history_start_ms``, ``page_limit``, ``latency_seconds``...). The child ends with the block:
    its standard input is closed and it exits (killed if it lingers); killed at once when the block
    fails.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.fake_process",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(json.dumps({"symbols": sorted(symbols), "now_ms": now_ms, "knobs": knobs}).encode() + b"\n")
        await process.stdin.drain()
        async with asyncio.timeout(STARTUP_SECONDS):
            first = await process.stdout.readline()
        if not first:
            raise RuntimeError(f"the fake Binance process ended before serving (exit code {await process.wait()})")
        yield FakeBinanceProcess(process, json.loads(first))
    except BaseException:
        await _end(process, kill=True)
        raise
    await _end(process, kill=False)


async def _end(process: asyncio.subprocess.Process, *, kill: bool) -> None:
    """End the child: at once (``kill``), or by closing its standard input, killed if it lingers."""
    if process.returncode is None and not kill:
        assert process.stdin is not None
        process.stdin.close()
        with suppress(TimeoutError):
            async with asyncio.timeout(EXIT_SECONDS):
                await process.wait()
    if process.returncode is None:
        process.kill()
    await process.wait()


async def serve() -> None:
    """The child: read the knobs, serve the fake, then answer the commands on standard input until
    it closes."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    parsed = json.loads(await commands.readline())
    clock = [parsed["now_ms"]]
    async with running_fake_binance(parsed["symbols"], now_ms=lambda: clock[0], **parsed["knobs"]) as fake:
        print(json.dumps(fake.exchange_overrides()), flush=True)
        while line := await commands.readline():
            match line.decode().split():
                case ["advance", ms]:
                    clock[0] += int(ms)
                    print("ok", flush=True)
                case ["cpu"]:
                    print(repr(time.process_time()), flush=True)
                case other:
                    print(f"unknown command {other!r}", flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
