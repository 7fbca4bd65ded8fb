"""The events WebSocket described for machines: an AsyncAPI 2.6 document served at
``/schema/asyncapi.json`` and linked from the OpenAPI description."""

from __future__ import annotations

from typing import Any

from litestar import get

from backend.monitoring.websocket import EVENTS_PATH, FIRST_MESSAGE_TIMEOUT_SECONDS, TOO_SLOW_CLOSE_CODE

ASYNCAPI_PATH = "/schema/asyncapi.json"
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
CLOSE_CODES = {
    1008: "No valid access token (missing, invalid, expired, or of a deactivated user)",
    1011: "This process cannot listen to the database right now: reconnect after a pause",
    TOO_SLOW_CLOSE_CODE: "The client fell too far behind: reconnect, then refetch what it shows",
}


def _message(name: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": name, "summary": summary, "contentType": "application/json", "payload": payload}


def _event(event_type: str | list[str], properties: dict[str, Any]) -> dict[str, Any]:
    kind = {"type": "string", "enum": event_type if isinstance(event_type, list) else [event_type]}
    return {"type": "object", "required": ["type"], "properties": {"type": kind, **properties}}


RUN_EVENT = _event(
    ["run_started", "run_finished"],
    {
        "log_id": {"type": "integer", "description": "The execution log: GET /execution-logs/{log_id}"},
        "config_id": NULLABLE_INTEGER,
        "job_name": {"type": "string"},
        "job_type": {"type": "string"},
        "symbol": NULLABLE_STRING,
        "exchange": NULLABLE_STRING,
        "status": {"type": "string", "enum": ["running", "success", "failed", "partial"]},
        "trigger": NULLABLE_STRING,
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "duration_seconds": {"type": ["number", "null"]},
        "records_collected": NULLABLE_INTEGER,
        "error_type": NULLABLE_STRING,
    },
)
CONFIG_EVENT = _event(
    "config_changed",
    {
        "action": {"type": "string", "enum": ["created", "updated", "deleted"]},
        "config_id": {"type": "integer"},
        "symbol": {"type": "string"},
        "exchange": {"type": "string"},
        "enabled": {"type": "boolean"},
    },
)
ALERTS_EVENT = _event(
    "alerts_changed",
    {
        "firing": {"type": "integer", "description": "Alerts firing now: GET /alerts"},
        "fired": {"type": "integer", "description": "Alerts that started firing in this change"},
        "resolved": {"type": "integer", "description": "Alerts that resolved in this change"},
    },
)
CLOSE_CODE_LINES = "\n".join(f"- `{code}`: {meaning}" for code, meaning in CLOSE_CODES.items())
DESCRIPTION = f"""Runs that start or finish, configs that change and alerts that fire or resolve, as committed
by any process.

Authenticate with `?token=<access_token>`, an `Authorization: Bearer` header, or by sending the token
(bare, or as `{{"token": "..."}}`) as the first message within {FIRST_MESSAGE_TIMEOUT_SECONDS:g} s. The
server then sends `ready`, then one JSON text message per event. It closes the connection with:

{CLOSE_CODE_LINES}
"""

ASYNCAPI_DOCUMENT: dict[str, Any] = {
    "asyncapi": "2.6.0",
    "id": "urn:altar-trader-hub:events",
    "info": {
        "title": "Altar Trader Hub live events",
        "version": "1.0.0",
        "description": "The events WebSocket of the REST API described at /schema/openapi.json.",
        "license": {"name": "Proprietary"},
    },
    "defaultContentType": "application/json",
    "servers": {
        "app": {
            "url": "{host}",
            "protocol": "ws",
            "description": "The app itself (use wss behind HTTPS)",
            "variables": {"host": {"default": "127.0.0.1:8000"}},
        }
    },
    "tags": [{"name": "events", "description": "Live events"}],
    "channels": {
        EVENTS_PATH: {
            "description": DESCRIPTION,
            "bindings": {
                "ws": {
                    "query": {
                        "type": "object",
                        "properties": {"token": {"type": "string", "description": "The access token"}},
                    },
                    "bindingVersion": "0.1.0",
                }
            },
            "subscribe": {
                "operationId": "receiveEvents",
                "summary": "Events the server sends",
                "description": "`ready` once, then events; `resync` when some may have been missed.",
                "tags": [{"name": "events"}],
                "message": {
                    "oneOf": [
                        {"$ref": "#/components/messages/ready"},
                        {"$ref": "#/components/messages/runEvent"},
                        {"$ref": "#/components/messages/configChanged"},
                        {"$ref": "#/components/messages/alertsChanged"},
                        {"$ref": "#/components/messages/resync"},
                    ]
                },
            },
            "publish": {
                "operationId": "sendToken",
                "summary": "The access token, as the first message (when not sent in the URL or a header)",
                "description": "Nothing else is read from the client.",
                "tags": [{"name": "events"}],
                "message": {"$ref": "#/components/messages/token"},
            },
        }
    },
    "components": {
        "messages": {
            "ready": _message("ready", "The subscription is live: no event after it is missed", _event("ready", {})),
            "runEvent": _message("runEvent", "A run started or finished", RUN_EVENT),
            "configChanged": _message("configChanged", "A config was created, updated or deleted", CONFIG_EVENT),
            "alertsChanged": _message("alertsChanged", "Alerts fired or resolved", ALERTS_EVENT),
            "resync": _message("resync", "Events may have been missed: refetch what you show", _event("resync", {})),
            "token": _message(
                "token",
                "The access token, bare or as an object",
                {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}},
                    ]
                },
            ),
        }
    },
}


@get(ASYNCAPI_PATH, include_in_schema=False, sync_to_thread=False, opt={"exclude_from_auth": True})
def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI document of the events WebSocket."""
    return ASYNCAPI_DOCUMENT
