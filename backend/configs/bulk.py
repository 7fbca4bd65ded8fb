"""``POST /configs/bulk``: enable, disable, delete or trigger many configs at once.

Enable, disable and delete are all or nothing, inside one transaction that first locks every id:
enable and disable go through the same repository function as their single-config routes, id by
id; delete removes them all in one statement, so that it takes its locks in the order runs take
theirs (``backend.runs.repository``) and never deadlocks with runs starting and ending meanwhile.
One unknown id and nothing changes: the answer is a 404 whose ``results`` say which ids are unknown.

Trigger starts each config's run as ``POST /configs/{id}/trigger`` does (the app's manual
trigger); runs are independent, so each id has its own outcome (``triggered`` with its
``run_id``, ``already_running``, ``not_found``), and the answer is a 200 whose ``applied`` says
whether any run was started.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

import msgspec
from litestar import Controller, Response, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from backend.auth.guards import writes_need_admin
from backend.configs import repository
from backend.db.pool import Connection, Pool
from backend.dependencies import PoolDependency
from backend.errors import ConflictError, NotFoundError, UnavailableError
from backend.scheduling.runs import ManualTrigger
from backend.web.openapi import documented_error
from backend.web.params import BIGINT_MAX

BulkAction = Literal["enable", "disable", "delete", "trigger"]
ChangeAction = Literal["enable", "disable", "delete"]
Outcome = Literal[
    "enabled",
    "disabled",
    "deleted",
    "unchanged",
    "not_found",
    "not_applied",
    "triggered",
    "already_running",
    "unavailable",
]
MAX_BULK_IDS = 1000

LOCK_CONFIGS = "SELECT id, enabled FROM data_collection_configs WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"


class BulkRequest(msgspec.Struct, forbid_unknown_fields=True):
    action: BulkAction
    ids: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=BIGINT_MAX)]],
        msgspec.Meta(
            min_length=1,
            max_length=MAX_BULK_IDS,
            description="Distinct config ids",
            extra_json_schema={"uniqueItems": True},
        ),
    ]

    def __post_init__(self) -> None:
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("ids: must not contain duplicates")


class BulkItemResult(msgspec.Struct, omit_defaults=True):
    """What happened to one id: ``unchanged`` when it already was as asked; ``not_applied`` when
    another id was unknown and so nothing was done; for a trigger, the ``run_id`` of the run
    started, or why none was (``detail``)."""

    id: int
    outcome: Outcome
    run_id: int | None = None
    detail: str | None = None


class BulkResult(msgspec.Struct):
    """``applied`` says what happened: for enable, disable and delete (all or nothing), that the action
    was carried out for every id; for trigger, that at least one run was started (``results`` says
    which ids were ``triggered``)."""

    action: BulkAction
    applied: bool
    results: list[BulkItemResult]


async def apply_bulk_change(pool: Pool, *, action: ChangeAction, ids: list[int]) -> BulkResult:
    """Apply ``action`` to every id in one transaction, or to none when an id is unknown."""
    async with pool.acquire() as proxy, proxy.transaction():
        conn = cast(Connection, proxy)  # the pool hands out a proxy of a Connection
        enabled_by_id = {row["id"]: row["enabled"] for row in await conn.fetch(LOCK_CONFIGS, ids)}
        if len(enabled_by_id) < len(ids):
            results = [BulkItemResult(i, "not_applied" if i in enabled_by_id else "not_found") for i in ids]
            return BulkResult(action=action, applied=False, results=results)
        if action == "delete":
            await repository.delete_configs(conn, config_ids=ids)
            return BulkResult(action=action, applied=True, results=[BulkItemResult(i, "deleted") for i in ids])
        return BulkResult(
            action=action, applied=True, results=[await _apply(conn, action, i, enabled_by_id[i]) for i in ids]
        )


async def _apply(
    conn: Connection, action: Literal["enable", "disable"], config_id: int, enabled: bool
) -> BulkItemResult:
    wanted = action == "enable"
    if enabled == wanted:
        return BulkItemResult(config_id, "unchanged")
    await repository.set_enabled(conn, config_id=config_id, enabled=wanted)
    return BulkItemResult(config_id, "enabled" if wanted else "disabled")


async def trigger_each(manual_trigger: ManualTrigger, ids: list[int]) -> BulkResult:
    """Trigger every id in turn; an unavailable backend before the first run fails the request (503)."""
    results: list[BulkItemResult] = []
    for config_id in ids:
        try:
            run = await manual_trigger.trigger(config_id)
        except NotFoundError:
            results.append(BulkItemResult(config_id, "not_found"))
        except ConflictError as exc:
            results.append(BulkItemResult(config_id, "already_running", detail=str(exc)))
        except UnavailableError as exc:
            if not results:
                raise
            results.append(BulkItemResult(config_id, "unavailable", detail=str(exc)))
        else:
            results.append(BulkItemResult(config_id, "triggered", run_id=run.run_id))
    applied = any(result.outcome == "triggered" for result in results)
    return BulkResult(action="trigger", applied=applied, results=results)


class BulkConfigController(Controller):
    path = "/api/v1/admin/data-collection/configs/bulk"
    tags = ["configs"]
    guards = [writes_need_admin]

    @post(
        "/",
        operation_id="bulkConfigs",
        status_code=200,
        responses={
            404: ResponseSpec(BulkResult, description="Some ids are unknown: nothing was changed"),
            503: documented_error("trigger: runs cannot start (Redis unavailable with arq, or SCHEDULER_BACKEND=off)"),
        },
    )
    async def bulk(self, pool: PoolDependency, state: State, data: JSONBody[BulkRequest]) -> Response[BulkResult]:
        """Enable, disable or delete the listed configs (admin) all in one transaction, or none of them
        (404 naming the unknown ids); or trigger a run of each (per-id outcomes; 503 when runs cannot start).

        `results` has one entry per id, in the order sent.
        """
        if data.action == "trigger":
            return Response(await trigger_each(state.manual_trigger, data.ids))
        result = await apply_bulk_change(pool, action=data.action, ids=data.ids)
        return Response(result, status_code=200 if result.applied else 404)
