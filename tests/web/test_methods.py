"""HEAD and OPTIONS on every route of the app: OPTIONS lists exactly the route's methods, and
HEAD answers wherever GET does, with GET's status and headers and no body."""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.settings import Settings
from tests.conftest import TEST_SECRET_KEY

Client = AsyncTestClient[Litestar]
PATH_PARAMETER = re.compile(r"\{[^}:]+:(?P<type>[a-z]+)\}")
SAMPLE_BY_TYPE = {"int": "1", "str": "openapi.json", "path": "app.css"}
# headers that differ between two answers to the same request (/metrics grows with every request)
PER_ANSWER = {"date", "x-request-id", "etag", "content-disposition", "content-length"}


def _routes() -> list[HTTPRoute]:
    settings = Settings(app_env="test", database_url="postgresql://unused", secret_key=TEST_SECRET_KEY)
    routes = [route for route in create_app(settings).routes if isinstance(route, HTTPRoute)]
    return sorted(routes, key=lambda route: route.path)  # one order in every test process


def _url(route: HTTPRoute) -> str:
    return PATH_PARAMETER.sub(lambda match: SAMPLE_BY_TYPE[match["type"]], route.path)


def _declared(route: HTTPRoute) -> set[str]:
    """The methods the route's handlers declare, OPTIONS, and HEAD wherever GET is."""
    methods = {method for handler in route.route_handlers for method in handler.http_methods} | {"OPTIONS"}
    return methods | {"HEAD"} if "GET" in methods else methods


ROUTES = _routes()
GET_ROUTES = [route for route in ROUTES if "GET" in route.methods]


@pytest.mark.parametrize("route", ROUTES, ids=[route.path for route in ROUTES])
async def test_options_lists_every_method_of_the_route_without_a_token(client: Client, route: HTTPRoute) -> None:
    response = await client.options(_url(route))

    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == _declared(route)


async def test_options_on_the_configs_collection_lists_get_and_post(client: Client) -> None:
    response = await client.options("/api/v1/admin/data-collection/configs")

    assert response.headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_a_method_the_route_lacks_answers_405_listing_the_real_methods(
    client: Client, admin_headers: dict[str, str]
) -> None:
    response = await client.patch("/api/v1/admin/data-collection/configs/1", headers=admin_headers)

    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PUT"


@pytest.mark.parametrize("route", GET_ROUTES, ids=[route.path for route in GET_ROUTES])
async def test_head_answers_as_get_without_the_body(
    client: Client, admin_headers: dict[str, str], route: HTTPRoute
) -> None:
    get = await client.get(_url(route), headers=admin_headers)
    head = await client.head(_url(route), headers=admin_headers)

    assert head.status_code == get.status_code
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k not in PER_ANSWER} == {
        k: v for k, v in get.headers.items() if k not in PER_ANSWER
    }


async def test_head_on_health_needs_no_token(client: Client) -> None:
    response = await client.head("/health")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


async def test_head_checks_the_token_as_get_does(client: Client) -> None:
    response = await client.head("/api/v1/admin/data-collection/configs")

    assert response.status_code == 401
    assert response.content == b""


async def test_head_is_not_answered_where_get_is_not(client: Client, admin_headers: dict[str, str]) -> None:
    response = await client.head("/api/v1/admin/data-collection/configs/bulk", headers=admin_headers)

    assert response.status_code == 405
    assert response.headers["allow"] == "OPTIONS, POST"
