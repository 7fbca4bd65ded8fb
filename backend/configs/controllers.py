"""Routes for data-collection configs: list, create, read, update, delete, enable, disable."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody, Parameter

from backend.auth.guards import writes_need_admin
from backend.auth.schemas import User
from backend.configs import repository
from backend.configs.schemas import Config, ConfigCreate, ConfigUpdate, ConfigWarning, TriggerAccepted
from backend.dependencies import PoolDependency
from backend.errors import NotFoundError
from backend.scheduling.budget import over_budget_message
from backend.scheduling.runs import ManualTrigger
from backend.settings import Settings
from backend.web.openapi import documented_error
from backend.web.params import Skip, resource_id

ConfigId = Annotated[int, resource_id("Config id")]


def _found(config: Config | None, config_id: int) -> Config:
    if config is None:
        raise NotFoundError(f"Config {config_id} not found")
    return config


async def _with_budget_warning(pool: PoolDependency, state: State, config: Config) -> Config:
    """The config just written, warned when its exchange is now asked for more than its request budget."""
    if config.enabled:
        settings: Settings = state.settings
        message = await over_budget_message(
            pool,
            exchange=config.exchange,
            overrides=settings.exchange_overrides,
            interval_unit_seconds=settings.interval_unit_seconds,
        )
        if message is not None:
            config.warnings.append(ConfigWarning(field="exchange", message=message))
    return config


class ConfigController(Controller):
    path = "/api/v1/admin/data-collection/configs"
    tags = ["configs"]
    guards = [writes_need_admin]

    @get("/", operation_id="listConfigs")
    async def list_configs(
        self,
        pool: PoolDependency,
        enabled: FromQuery[bool | None] = None,
        exchange: FromQuery[str | None] = None,
        skip: Skip = 0,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 100,
    ) -> list[Config]:
        """List configs by id, optionally only enabled or disabled ones, or one exchange's."""
        return await repository.list_configs(
            pool, enabled=enabled, exchange=exchange.lower() if exchange else None, skip=skip, limit=limit
        )

    @post(
        "/",
        operation_id="createConfig",
        responses={409: documented_error("The exchange already has a config of this symbol")},
    )
    async def create_config(
        self, pool: PoolDependency, request: Request[User, Any, Any], data: JSONBody[ConfigCreate]
    ) -> Config:
        """Create a config; when enabled, its job starts by itself. (exchange, symbol) is unique: 409.
        A config that takes its exchange over its request budget is created with a warning."""
        config = await repository.create_config(pool, data=data, created_by=request.user.id)
        return await _with_budget_warning(pool, request.app.state, config)

    @get("/{config_id:int}", operation_id="getConfig")
    async def get_config(self, pool: PoolDependency, config_id: ConfigId) -> Config:
        """One config."""
        return _found(await repository.get_config(pool, config_id=config_id), config_id)

    @put(
        "/{config_id:int}",
        operation_id="updateConfig",
        responses={409: documented_error("The exchange already has a config of this symbol")},
    )
    async def update_config(
        self, pool: PoolDependency, state: State, config_id: ConfigId, data: JSONBody[ConfigUpdate]
    ) -> Config:
        """Change only the fields sent; the schedule follows at once. A change that takes the config's
        exchange over its request budget is answered with a warning."""
        changes = data.changes()
        if not changes:
            return _found(await repository.get_config(pool, config_id=config_id), config_id)
        config = _found(await repository.update_config(pool, config_id=config_id, changes=changes), config_id)
        return await _with_budget_warning(pool, state, config)

    @delete("/{config_id:int}", operation_id="deleteConfig")
    async def delete_config(self, pool: PoolDependency, config_id: ConfigId) -> None:
        """Delete a config; its job stops, its execution logs stay (with `config_id` null)."""
        if not await repository.delete_config(pool, config_id=config_id):
            raise NotFoundError(f"Config {config_id} not found")

    @post("/{config_id:int}/enable", operation_id="enableConfig", status_code=200)
    async def enable_config(self, pool: PoolDependency, state: State, config_id: ConfigId) -> Config:
        """Enable a config: its job starts (with a warning when that takes its exchange over its request budget)."""
        config = _found(await repository.set_enabled(pool, config_id=config_id, enabled=True), config_id)
        return await _with_budget_warning(pool, state, config)

    @post("/{config_id:int}/disable", operation_id="disableConfig", status_code=200)
    async def disable_config(self, pool: PoolDependency, config_id: ConfigId) -> Config:
        """Disable a config: no new runs start."""
        return _found(await repository.set_enabled(pool, config_id=config_id, enabled=False), config_id)

    @post(
        "/{config_id:int}/trigger",
        operation_id="triggerConfig",
        status_code=202,
        responses={
            409: documented_error("A run of this config is in progress"),
            503: documented_error("Runs cannot start: Redis unavailable (arq), or SCHEDULER_BACKEND=off"),
        },
    )
    async def trigger_config(self, pool: PoolDependency, state: State, config_id: ConfigId) -> TriggerAccepted:
        """Run the config now, whatever its schedule, also when it is disabled (the schedule stays off).

        `run_id` is the execution log of the run (`running` until it ends); with SCHEDULER_BACKEND=arq,
        `arq_job_id` is the worker's job. 409 while a run of this config is in progress; 503 when
        runs cannot start (Redis unavailable with SCHEDULER_BACKEND=arq, or SCHEDULER_BACKEND=off).
        """
        config = _found(await repository.get_config(pool, config_id=config_id), config_id)
        manual_trigger: ManualTrigger = state.manual_trigger
        run = await manual_trigger.trigger(config_id)
        return TriggerAccepted(
            message=f"Data collection triggered for {config.symbol}",
            config_id=config_id,
            run_id=run.run_id,
            arq_job_id=run.arq_job_id,
        )
