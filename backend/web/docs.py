"""Swagger UI served by the app itself, from the pinned ``swagger-ui-bundle-v2`` package: ``/docs``
works without internet. The OpenAPI document stays at ``/schema/openapi.json``."""

from __future__ import annotations

from importlib.metadata import version

from litestar import Router, get
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

SWAGGER_UI_VERSION = version("swagger-ui-bundle-v2")
ASSETS_PATH = f"/schema/swagger-ui/{SWAGGER_UI_VERSION}"  # versioned: cached for good by browsers
ASSETS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")


def swagger_ui() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        version=SWAGGER_UI_VERSION,
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">',
        path=["/", "/swagger"],
    )


def swagger_ui_assets() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[swagger_ui_path],
        include_in_schema=False,
        cache_control=None,
        opt={"exclude_from_auth": True},
        name="swagger-ui-assets",
    )


@get("/docs", include_in_schema=False)
async def docs_redirect() -> Redirect:
    return Redirect("/schema/swagger")
