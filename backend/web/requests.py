"""Request parsing, once for every route: the query string and JSON bodies.

- Query string: an empty value (``?enabled=``, ``?symbol=``) means the parameter was not sent, so
  "no filter" everywhere; a NUL character in a value is a 400 naming the parameter (PostgreSQL
  stores no NUL, and no identifier or filter here can contain one). Each value is then held to its
  parameter's schema in the published document where Litestar's own reading is laxer: a boolean is
  ``true`` or ``false``, a number or an enum is never ``null``, and a parameter that is not a list
  is given once.
- JSON bodies: not JSON, not UTF-8, or nested deeper than any body here is a 400; the body is
  checked against the route's declared type *strictly* (``"10"`` is not an integer, while ``10.0``
  is, as JSON Schema says), the error naming the field; a NUL character in any string of it is a
  400 naming the field. A value that does not match a field's pattern is told what the field's
  description says it must be, not the regular expression.
"""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qs, unquote_plus

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.empty import value_or_default

NUL = "\x00"
# msgspec's message ends with " - at `$.field[0]`" when it knows where the problem is
ERROR_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
FIELD_PREFIX = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*): ")
PATTERN_MISMATCH = re.compile(r"^Expected `str` matching regex '.*'$", re.DOTALL)


def _described_mismatch(annotation: Any, key: str) -> str | None:
    """``Expected <description>`` for the field ``key`` of the body type, when it has a description."""
    info = msgspec.inspect.type_info(annotation)
    for field in getattr(info, "fields", ()):
        if field.name == key and isinstance(field.type, msgspec.inspect.Metadata):
            description = (field.type.extra_json_schema or {}).get("description")
            return f"Expected {description}" if description else None
    return None


def _field_name(path: str) -> str:
    """``.ids[3]`` -> ``ids[3]``; ``""`` (the whole body) -> ``""``."""
    return path.removeprefix(".")


def _validation_error(
    request: Request[Any, Any, Any], message: str, key: str | None, source: str
) -> ValidationException:
    return ValidationException(
        f"Validation failed for {request.method} {request.scope.get('path', '')}",
        extra=[{"message": message, "key": key, "source": source}],
    )


def _nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL in a decoded body (its type bounds the depth)."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return name
            if (found := _nul_field(item, name)) is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := _nul_field(item, f"{path}[{index}]")) is not None:
                return found
    return None


def _integral_floats_as_ints(value: Any) -> Any:
    """``10.0`` -> ``10`` anywhere in a decoded body: JSON Schema's ``integer`` is any number without
    a fractional part, and the published schema is what clients are told."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


def parse_json_body(request: Request[Any, Any, Any], body: bytes) -> Any:
    """The decoded body, after the checks above; raises ``ValidationException`` naming the problem."""
    try:
        value = msgspec.json.decode(body)
    except UnicodeDecodeError:
        raise _validation_error(request, "The body is not valid UTF-8", None, "body") from None
    except RecursionError:
        raise _validation_error(request, "The body is nested too deeply", None, "body") from None
    except msgspec.DecodeError as exc:
        raise _validation_error(request, f"The body is not valid JSON ({exc})", None, "body") from None
    field = request.route_handler.parsed_data_field
    if field is None:
        return value
    value = _integral_floats_as_ints(value)
    try:
        typed = msgspec.convert(value, field.annotation, strict=True)
    except msgspec.ValidationError as exc:
        match = ERROR_PATH.match(str(exc))
        assert match is not None  # the pattern matches any text
        message, path = match["message"], match["path"]
        key = _field_name(path) if path else None
        if not key and (prefix := FIELD_PREFIX.match(message)):  # a check that names its field first
            key = prefix["key"]
        if key and PATTERN_MISMATCH.match(message):
            message = _described_mismatch(field.annotation, key) or message
        raise _validation_error(request, message, key, "body") from None
    if (nul_path := _nul_field(typed)) is not None:
        raise _validation_error(request, "must not contain a NUL character", nul_path, "body")
    return value


class ParsedRequest(Request[Any, Any, Any]):
    """The app's request class: JSON bodies go through :func:`parse_json_body`."""

    async def json(self) -> Any:
        if value_or_default(self._connection_state.json, None) is None:
            body = await self.body()
            self._connection_state.json = parse_json_body(self, body or b"null")
        return await super().json()


def normalize_query_string(query_string: bytes) -> bytes:
    """The query string without empty parameters; a NUL in a name or value raises naming it."""
    kept = []
    for part in query_string.split(b"&"):
        name, _, value = part.partition(b"=")
        if not name or not value:
            continue
        decoded_name = unquote_plus(name.decode("latin-1"), errors="replace")
        if NUL in decoded_name or NUL in unquote_plus(value.decode("latin-1"), errors="replace"):
            raise _invalid_query(decoded_name, "must not contain a NUL character")
        kept.append(part)
    return b"&".join(kept)


def _invalid_query(name: str, message: str) -> ValidationException:
    return ValidationException(
        f"Validation failed: query parameter {name} {message}",
        extra=[{"message": message, "key": name, "source": "query"}],
    )


def _schema_mismatch(schema: dict[str, Any], values: list[str]) -> str | None:
    """What is wrong with ``values`` of one query parameter whose schema is ``schema``, if Litestar
    would let it through."""
    if len(values) > 1 and schema.get("type") != "array":
        return "must be given once"
    value = values[0]
    if schema.get("type") == "boolean" and value not in ("true", "false"):
        return "Expected `true` or `false`"
    if "enum" in schema and value not in [str(option) for option in schema["enum"]]:
        return "Expected one of " + ", ".join(f"`{option}`" for option in schema["enum"])
    if schema.get("type") in ("integer", "number") and value == "null":
        return f"Expected an {schema['type']}"
    return None


def check_query_values(query_string: bytes, parameters: dict[str, dict[str, Any]]) -> None:
    """Hold each value to its parameter's schema (``parameters``: by name), as the module says."""
    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=False)
    for name, given in values.items():
        schema = parameters.get(name)
        if schema is not None and (message := _schema_mismatch(schema, given)) is not None:
            raise _invalid_query(name, message)


class QueryStringMiddleware:
    """Applies :func:`normalize_query_string` and :func:`check_query_values` to every HTTP request
    before its parameters are read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope.get("query_string"):
            query_string = normalize_query_string(scope["query_string"])
            handler = scope.get("route_handler")
            by_operation = getattr(scope["app"].state, "query_parameters", {})
            check_query_values(query_string, by_operation.get(getattr(handler, "operation_id", None), {}))
            scope = cast("Scope", {**scope, "query_string": query_string})
        await self.app(scope, receive, send)
