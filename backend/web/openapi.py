"""The published OpenAPI document, completed once at start-up so that client tooling accepts it.

Litestar generates the document from the routes; this adds what it cannot know or gets wrong:

- every error an operation can answer, each with the one shared ``Error`` body: 400 when it
  takes parameters or a body, 401 when it needs a token, 403 when it also changes something,
  404 when its path names a resource, 503 when it needs the database; 409, 429 (with
  ``Retry-After``) and route-specific 503s are declared by the routes themselves;
- ``security: []`` on the routes that need no token, and no ``name`` on the HTTP bearer scheme;
- a ``schema`` on every response header, and a 304 on ETag routes;
- request bodies described by msgspec itself, from the very types that decode them (bounds of
  list items, ``additionalProperties: false``, ``extra_json_schema`` such as ``uniqueItems`` or an
  ``enum``), where Litestar loses constraints;
- parameters as they are read: never ``null`` (a query value is a string or absent), integer bounds
  as the exact integers declared (Litestar writes them as floats: ``9.223372036854776e+18``), and
  ``allowEmptyValue`` on optional query parameters (sent empty, they are as if not sent);
- no NUL character in any string a request sends (``pattern``), as the server refuses them;
- whatever a route adds through ``opt={"openapi": callable}`` (CSV alternatives, raw rows).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from backend.auth.tokens import PUBLIC_PATHS
from backend.web.errors import Error

OperationHook = Callable[[dict[str, Any]], None]
ERROR_REF = {"$ref": "#/components/schemas/Error"}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
NO_DATABASE = frozenset({"liveness"})  # operations that answer without touching PostgreSQL
ERROR_DESCRIPTIONS = {
    400: "The request is invalid: `detail` says why and `extra` names each field (`key`, `source`)",
    401: "No token, or a token that is invalid, expired or of a deactivated user",
    403: "The token's user may read but this action needs the admin role",
    404: "No such resource",
    409: "Conflicts with the current state",
    429: "Too many attempts: wait for `Retry-After` seconds",
    503: "A service this request needs is unavailable (the database, Redis or the scheduler); retry shortly",
}
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "X-Total-Count": {"type": "integer", "minimum": 0},
    "X-Total-Count-Exact": {"type": "string", "enum": ["true", "false"]},
    "Retry-After": {"type": "integer", "minimum": 1},
}
PATH_PARAMETER = re.compile(r"\{[^}]+\}")
NO_NUL = "^[^\\x00]*$"  # the server refuses a NUL character in any string of a request
BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}


def documented_error(description: str) -> ResponseSpec:
    """For a route's ``responses``: an error it can answer, with the shared body."""
    return ResponseSpec(data_container=Error, description=description)


def _error_components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([Error], ref_template="#/components/schemas/{name}")
    return components


def _is_public(path: str) -> bool:
    return any(re.match(pattern, path) for pattern in PUBLIC_PATHS)


def _handlers_by_operation(app: Litestar) -> dict[str, HTTPRouteHandler]:
    handlers: dict[str, HTTPRouteHandler] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and isinstance(handler.operation_id, str):
                handlers[handler.operation_id] = handler
    return handlers


def _request_body_components(handlers: dict[str, HTTPRouteHandler]) -> dict[str, Any]:
    """msgspec's schemas of the Struct bodies the routes decode, and of the Structs inside them."""
    body_types = set()
    for handler in handlers.values():
        field = handler.parsed_data_field
        body_type = field.annotation if field is not None else None
        if isinstance(body_type, type) and issubclass(body_type, msgspec.Struct):
            body_types.add(body_type)
    if not body_types:
        return {}
    _, components = msgspec.json.schema_components(
        sorted(body_types, key=lambda body: body.__name__), ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        _forbid_nul(schema)
    return components


def _forbid_nul(schema: Any) -> None:
    """``pattern: NO_NUL`` on every string schema in ``schema`` that does not already constrain its text."""
    if isinstance(schema, list):
        for item in schema:
            _forbid_nul(item)
        return
    if not isinstance(schema, dict):
        return
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"pattern", "enum", "const", "format"} & schema.keys():
        schema["pattern"] = NO_NUL
    for key in ("anyOf", "oneOf", "allOf", "items", "properties", "additionalProperties"):
        if key == "properties" and isinstance(schema.get(key), dict):
            _forbid_nul(list(schema[key].values()))
        elif key in schema:
            _forbid_nul(schema[key])


def _without_null(schema: dict[str, Any]) -> None:
    """A parameter is a string on the wire, or absent: no ``null`` branch, type or enum value."""
    for key in ("oneOf", "anyOf"):
        branches = schema.get(key)
        if not isinstance(branches, list):
            continue
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            del schema[key]
            for name, value in kept[0].items():
                schema.setdefault(name, value)
        else:
            schema[key] = kept
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        kept_types = [name for name in types if name != "null"]
        schema["type"] = kept_types[0] if len(kept_types) == 1 else kept_types
    if isinstance(schema.get("enum"), list):
        schema["enum"] = [value for value in schema["enum"] if value is not None]


def _declared_bounds(handler: HTTPRouteHandler | None) -> dict[str, dict[str, Any]]:
    """The bounds each parameter of the handler declares (``Parameter(ge=..., le=...)``), by its name
    in the request."""
    if handler is None:
        return {}
    bounds: dict[str, dict[str, Any]] = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if kwarg is None:
            continue
        wire_name = getattr(kwarg, "query", None) or getattr(kwarg, "header", None) or name
        bounds[wire_name] = {key: getattr(kwarg, attribute, None) for key, attribute in BOUNDS.items()}
    return bounds


def _complete_parameters(operation: dict[str, Any], handler: HTTPRouteHandler | None) -> None:
    declared = _declared_bounds(handler)
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema")
        if not isinstance(schema, dict):
            continue
        _without_null(schema)
        for key, value in declared.get(parameter["name"], {}).items():
            if value is not None and key in schema:
                schema[key] = value
        for key in BOUNDS:
            if isinstance(schema.get(key), float) and schema[key].is_integer() and abs(schema[key]) < 2**53:
                schema[key] = int(schema[key])
        _forbid_nul(schema)


def _empty_means_absent(operation: dict[str, Any]) -> None:
    """An optional query parameter sent empty (``?enabled=``) is as if not sent: no filter."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query" and not parameter.get("required"):
            parameter["allowEmptyValue"] = True


def _complete_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    public = operation.get("security") == []
    wanted = set()
    if operation.get("parameters") or operation.get("requestBody"):
        wanted.add(400)
    if not public:
        wanted.add(401)
        if method in WRITE_METHODS:
            wanted.add(403)
    if PATH_PARAMETER.search(path):
        wanted.add(404)
    if operation.get("operationId") not in NO_DATABASE:
        wanted.add(503)
    for status in sorted(wanted):
        key = str(status)
        if key == "400" or key not in responses:  # Litestar's own 400 has an untyped body
            responses[key] = {"description": ERROR_DESCRIPTIONS[status]}
        responses[key].setdefault("content", {"application/json": {"schema": ERROR_REF}})
    for key, response in responses.items():
        if (
            key.startswith(("4", "5"))
            and response.get("content", {}).get("application/json", {}).get("schema") == ERROR_REF
        ):
            response["description"] = response.get("description") or ERROR_DESCRIPTIONS[int(key)]
        if key == "429":
            response.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before trying again",
                "schema": HEADER_SCHEMAS["Retry-After"],
            }
        for name, header in response.get("headers", {}).items():
            header.setdefault("schema", HEADER_SCHEMAS.get(name, {"type": "string"}))
            header.pop("deprecated", None)
    ok = responses.get("200", {})
    if "ETag" in ok.get("headers", {}):
        not_modified = responses.setdefault("304", {"description": "Not modified"})
        not_modified.pop("content", None)
        not_modified["headers"] = {
            name: ok["headers"][name] for name in ("ETag", "Cache-Control") if name in ok["headers"]
        }


def complete_openapi(document: dict[str, Any], handlers: dict[str, HTTPRouteHandler]) -> None:
    """Complete ``document`` (the dict the app serves) in place."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_error_components())
    schemas.update(_request_body_components(handlers))
    for scheme in components.get("securitySchemes", {}).values():
        if scheme.get("type") == "http":
            scheme.pop("name", None)
            scheme["scheme"] = "bearer"
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            if _is_public(path):
                operation["security"] = []
            handler = handlers.get(operation.get("operationId", ""))
            if handler is not None and (hook := handler.opt.get("openapi")) is not None:
                hook(operation)
            _complete_parameters(operation, handler)
            _empty_means_absent(operation)
            _complete_responses(path, method, operation)


def query_parameters(document: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The schema of every query parameter of every operation: by operationId, then by name."""
    return {
        operation["operationId"]: {
            parameter["name"]: parameter.get("schema", {})
            for parameter in operation.get("parameters", [])
            if parameter.get("in") == "query"
        }
        for item in document.get("paths", {}).values()
        for method in METHODS
        if isinstance(operation := item.get(method), dict) and "operationId" in operation
    }


async def finish_openapi(app: Litestar) -> None:
    """``on_startup``: complete the document before the first request can read it, and keep its query
    parameters' schemas in ``app.state.query_parameters`` (``backend.web.requests`` holds values to them)."""
    document = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
    complete_openapi(document, _handlers_by_operation(app))
    app.state.query_parameters = query_parameters(document)


def csv_download(*, json_schema: dict[str, Any] | None = None) -> OperationHook:
    """An ``opt["openapi"]`` hook: the 200 answer is also (or only) ``text/csv``, as an attachment."""

    def document(operation: dict[str, Any]) -> None:
        ok = operation.setdefault("responses", {}).setdefault("200", {"description": "OK"})
        content = ok.setdefault("content", {})
        if json_schema is not None:
            content["application/json"] = {"schema": json_schema}
        content["text/csv"] = {"schema": {"type": "string", "description": "RFC 4180 CSV with a header row"}}
        ok.setdefault("headers", {})["Content-Disposition"] = {
            "description": "`attachment` with an ASCII `filename` and the exact name as RFC 6266 `filename*`",
            "schema": {"type": "string"},
        }

    return document
