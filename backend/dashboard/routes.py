"""``/`` (the page) and ``/dashboard/...`` (its modules, styles and vendored libraries).

The files are public (the page asks for a login and then calls the API with the token), so these
routes need none. Every answer carries the page's Content-Security-Policy: scripts and styles from
this origin only (no inline script, no eval), connections to this origin and its WebSocket only, no
framing. Files are revalidated on every load (``no-cache`` with an ETag: a reload costs 304s) and
sent gzip-compressed to clients that accept it.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from backend.dashboard.assets import dashboard_assets
from backend.monitoring.etag import etag_matches

ASSETS_PATH = "/dashboard"
INDEX = "index.html"
# a Host header that can only name a host (and port): anything else stays out of the policy
PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
POLICY = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def content_security_policy(host: str | None) -> str:
    """The page's policy; ``connect-src`` names the WebSocket of ``host`` for browsers whose 'self' lacks it."""
    sockets = f" ws://{host} wss://{host}" if host and PLAIN_HOST.fullmatch(host) else ""
    return "; ".join((*POLICY, f"connect-src 'self'{sockets}"))


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _serve(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    asset = dashboard_assets().get(name)
    if asset is None:
        raise NotFoundException(f"No dashboard file {name}")
    headers = {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
    }
    if etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(b"", status_code=304, headers=headers, media_type=asset.media_type)
    if asset.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, headers=headers, media_type=asset.media_type)
    return Response(asset.body, headers=headers, media_type=asset.media_type)


@get("/", include_in_schema=False, opt={"exclude_from_auth": True})
async def dashboard_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The Control Center (its modules load from ``/dashboard/``)."""
    return _serve(request, INDEX)


@get(f"{ASSETS_PATH}/{{path:path}}", include_in_schema=False, opt={"exclude_from_auth": True})
async def dashboard_file(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[bytes]:
    """One file of the page: a module, the stylesheet, a vendored library, the icon."""
    return _serve(request, path.lstrip("/"))
