"""Markers for what the app injects into route handlers by name."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from backend.db.pool import Pool

PoolDependency: TypeAlias = NamedDependency[Pool]
"""The process's asyncpg pool, as ``pool: PoolDependency``."""
