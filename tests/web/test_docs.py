"""Swagger UI works without internet: the page loads its assets from the app itself."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]


async def test_docs_page_loads_every_asset_from_the_app(client: Client) -> None:
    page = await client.get("/docs", follow_redirects=True)

    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
    }
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 0


async def test_the_openapi_document_stays_where_it_was(client: Client) -> None:
    response = await client.get("/schema/openapi.json")

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")
