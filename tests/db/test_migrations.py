"""The migration runner against empty databases of its own."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from backend.db.migrate import MIGRATIONS_DIR, MigrationError, apply_migrations, read_migrations


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def _recorded(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


async def test_fresh_database_gets_every_migration_in_order(empty_database: str) -> None:
    applied = await apply_migrations(empty_database)

    assert applied == [m.name for m in read_migrations()]
    assert await _recorded(empty_database) == applied
    assert {"users", "data_collection_configs", "job_execution_logs"} <= await _tables(empty_database)


async def test_applying_twice_changes_nothing(empty_database: str) -> None:
    await apply_migrations(empty_database)

    assert await apply_migrations(empty_database) == []
    assert await _recorded(empty_database) == [m.name for m in read_migrations()]


async def test_edited_applied_file_is_an_error_naming_it(empty_database: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    await apply_migrations(empty_database, directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited afterwards\n")

    with pytest.raises(MigrationError, match=first.name):
        await apply_migrations(empty_database, directory)


async def test_failing_migration_leaves_nothing_half_applied(empty_database: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (directory / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")

    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(empty_database, directory)

    assert await _recorded(empty_database) == ["0001_good.sql"]
    assert "half" not in await _tables(empty_database)


async def test_concurrent_runs_apply_each_migration_once(empty_database: str) -> None:
    results = await asyncio.gather(*(apply_migrations(empty_database) for _ in range(4)))

    applied = [name for result in results for name in result]
    assert sorted(applied) == [m.name for m in read_migrations()]
    assert await _recorded(empty_database) == [m.name for m in read_migrations()]


def test_badly_named_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "add_things.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match="add_things.sql"):
        read_migrations(tmp_path)
