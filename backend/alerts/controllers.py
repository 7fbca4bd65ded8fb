"""``GET /alerts``: what fires now, what resolved lately, and the webhook's outbox."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from backend.alerts import repository
from backend.alerts.schemas import Alerts
from backend.auth.guards import writes_need_admin
from backend.dependencies import PoolDependency
from backend.monitoring.controllers import ADMIN_PATH, NOT_MODIFIED, POLLED_HEADERS, IfNoneMatch
from backend.monitoring.etag import etag_matches, make_etag, not_modified, polled_headers
from backend.settings import Settings

Hours = Annotated[int, Parameter(ge=1, le=720, description="Resolved alerts of the last N hours (1 to 720)")]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="At most this many alerts in each list")]


class AlertController(Controller):
    path = f"{ADMIN_PATH}/alerts"
    tags = ["alerts"]
    guards = [writes_need_admin]

    @get("/", operation_id="listAlerts", responses=NOT_MODIFIED, response_headers=POLLED_HEADERS)
    async def list_alerts(
        self,
        request: Request[Any, Any, Any],
        pool: PoolDependency,
        if_none_match: IfNoneMatch = None,
        hours: Hours = 24,
        limit: Limit = 100,
    ) -> Response[Alerts]:
        """The alerts firing now (oldest first), those resolved in the last `hours` (latest first),
        and the webhook's outbox. Every page of the Control Center polls it for its banner."""
        settings: Settings = request.app.state.settings
        firing, firing_count = await repository.list_firing(pool, limit=limit)
        recent = await repository.list_recent(pool, hours=hours, limit=limit)
        delivery, next_evaluation_at = await repository.read_delivery(
            pool, webhook_configured=settings.alert_webhook_url is not None
        )
        answer = Alerts(
            firing=firing,
            firing_count=firing_count,
            recent=recent,
            next_evaluation_at=next_evaluation_at,
            delivery=delivery,
        )
        etag = make_etag("alerts", msgspec.json.encode(answer))
        if etag_matches(if_none_match, etag):
            return not_modified(etag)
        return Response(answer, headers=polled_headers(etag))
