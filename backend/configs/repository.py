"""SQL for data-collection configs."""

from __future__ import annotations

from typing import Any

import msgspec

from backend.collection.profiles import profile_for
from backend.configs.schemas import Config, ConfigCreate
from backend.configs.warnings import config_warnings
from backend.db.pool import Connection, Pool

CONFIG_COLUMNS = """
    id, symbol, exchange, timeframes, interval_minutes, enabled,
    'collect_data_' || id AS job_id, created_at, updated_at, description, created_by, backfill_days,
    CASE WHEN enabled THEN next_run_at END AS next_run_at, last_run_at
"""
# columns a partial update may set; the SET clause is built only from these names
UPDATABLE_COLUMNS = ("symbol", "exchange", "timeframes", "interval_minutes", "enabled", "description", "backfill_days")

LIST_CONFIGS = f"""
SELECT {CONFIG_COLUMNS} FROM data_collection_configs
WHERE ($1::boolean IS NULL OR enabled = $1) AND ($2::text IS NULL OR exchange = $2)
ORDER BY id
OFFSET $3 LIMIT $4
"""
GET_CONFIG = f"SELECT {CONFIG_COLUMNS} FROM data_collection_configs WHERE id = $1"
INSERT_CONFIG = f"""
INSERT INTO data_collection_configs
    (symbol, exchange, timeframes, interval_minutes, enabled, description, created_by, backfill_days)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {CONFIG_COLUMNS}
"""
SET_ENABLED = f"""
UPDATE data_collection_configs SET enabled = $2, updated_at = now() WHERE id = $1
RETURNING {CONFIG_COLUMNS}
"""
DELETE_CONFIG = "DELETE FROM data_collection_configs WHERE id = $1 RETURNING id"
# one statement: every log row it detaches (ON DELETE SET NULL) is locked before the triggers that
# run at its end write the data versions (see backend.runs.repository for the lock order)
DELETE_CONFIGS = "DELETE FROM data_collection_configs WHERE id = ANY($1::bigint[])"


def _to_config(row: Any) -> Config | None:
    """The config of a row, with whether its exchange is verified and its warnings."""
    if row is None:
        return None
    config = msgspec.convert(dict(row), Config)
    config.exchange_verified = profile_for(config.exchange).verified
    config.warnings = config_warnings(config)
    return config


async def list_configs(
    db: Pool | Connection, *, enabled: bool | None, exchange: str | None, skip: int, limit: int
) -> list[Config]:
    rows = await db.fetch(LIST_CONFIGS, enabled, exchange, skip, limit)
    return [config for row in rows if (config := _to_config(row)) is not None]


async def get_config(db: Pool | Connection, *, config_id: int) -> Config | None:
    return _to_config(await db.fetchrow(GET_CONFIG, config_id))


async def create_config(db: Pool | Connection, *, data: ConfigCreate, created_by: int | None) -> Config:
    row = await db.fetchrow(
        INSERT_CONFIG,
        data.symbol,
        data.exchange,
        data.timeframes,
        data.interval_minutes,
        data.enabled,
        data.description,
        created_by,
        data.backfill_days,
    )
    config = _to_config(row)
    assert config is not None
    return config


async def update_config(db: Pool | Connection, *, config_id: int, changes: dict[str, Any]) -> Config | None:
    """Set the given columns (from ``UPDATABLE_COLUMNS`` only) and ``updated_at``."""
    unknown = set(changes) - set(UPDATABLE_COLUMNS)
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    names = [name for name in UPDATABLE_COLUMNS if name in changes]
    assignments = [f"{name} = ${index}" for index, name in enumerate(names, start=2)]
    sql = f"""
        UPDATE data_collection_configs SET {", ".join([*assignments, "updated_at = now()"])}
        WHERE id = $1 RETURNING {CONFIG_COLUMNS}
    """
    return _to_config(await db.fetchrow(sql, config_id, *(changes[name] for name in names)))


async def set_enabled(db: Pool | Connection, *, config_id: int, enabled: bool) -> Config | None:
    return _to_config(await db.fetchrow(SET_ENABLED, config_id, enabled))


async def delete_config(db: Pool | Connection, *, config_id: int) -> bool:
    return await db.fetchval(DELETE_CONFIG, config_id) is not None


async def delete_configs(db: Pool | Connection, *, config_ids: list[int]) -> None:
    """Delete these configs in one statement (their logs stay, detached)."""
    await db.execute(DELETE_CONFIGS, config_ids)
