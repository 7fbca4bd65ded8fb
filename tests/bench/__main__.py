"""Run every benchmark module (``bench_*.py``): each has ``async def main() -> None`` that prints."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

import tests.bench as package


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))
    if not names:
        print("no benchmarks yet")
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name} ==")
        asyncio.run(module.main())


main()
