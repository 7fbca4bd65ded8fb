"""The page's files over HTTP: public, strict Content-Security-Policy, gzip, ETags, nothing from elsewhere."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.dashboard.assets import STATIC_ROOT

MODULE_IMPORT = re.compile(r"""(?:import|from)\s*\(?\s*["']([^"']+)["']|= "(/dashboard/vendor/[^"]+)";""")
URL = re.compile(r"https?://")


async def test_the_page_is_served_at_the_root_without_a_token(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/js/main.js"></script>' in response.text


async def test_every_dashboard_answer_carries_a_strict_content_security_policy(
    client: AsyncTestClient[Litestar],
) -> None:
    for path in ("/", "/dashboard/js/main.js", "/dashboard/app.css"):
        policy = (await client.get(path, headers={"Host": "hub.example.com"})).headers["content-security-policy"]
        directives = dict(item.strip().split(" ", 1) for item in policy.split(";"))

        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"  # no inline script, no eval
        assert directives["style-src"] == "'self'"
        assert directives["connect-src"] == "'self' ws://hub.example.com wss://hub.example.com"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy


async def test_a_host_header_that_is_no_host_stays_out_of_the_policy(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/", headers={"Host": "evil.example;script-src"})

    assert response.headers["content-security-policy"].endswith("connect-src 'self'")
    assert "evil" not in response.headers["content-security-policy"]


async def test_files_are_sent_gzipped_to_clients_that_accept_it(client: AsyncTestClient[Litestar]) -> None:
    original = (STATIC_ROOT / "js" / "api.js").read_bytes()

    zipped = await client.get("/dashboard/js/api.js", headers={"Accept-Encoding": "gzip"})
    plain = await client.get("/dashboard/js/api.js", headers={"Accept-Encoding": "identity"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) == len(gzip.compress(original, compresslevel=9, mtime=0))
    assert zipped.content == original  # the client decompressed it
    assert "content-encoding" not in plain.headers
    assert plain.content == original
    assert zipped.headers["vary"] == "Accept-Encoding"


async def test_a_reload_answers_304_while_the_file_is_unchanged(client: AsyncTestClient[Litestar]) -> None:
    first = await client.get("/dashboard/app.css")

    again = await client.get("/dashboard/app.css", headers={"If-None-Match": first.headers["etag"]})

    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304
    assert again.content == b""


async def test_unknown_files_and_paths_outside_the_folder_are_404(client: AsyncTestClient[Litestar]) -> None:
    for path in ("/dashboard/js/nope.js", "/dashboard/../settings.py", "/dashboard/vendor/uplot-1.6.32/LICENSE"):
        assert (await client.get(path)).status_code == 404, path


async def test_the_dashboard_routes_are_not_in_the_api_schema(client: AsyncTestClient[Litestar]) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    assert not [path for path in paths if path == "/" or path.startswith("/dashboard")]


def _imports(path: Path) -> list[str]:
    return [first or second for first, second in MODULE_IMPORT.findall(path.read_text())]


async def test_every_module_the_page_loads_is_served(client: AsyncTestClient[Litestar]) -> None:
    """From main.js through every static and dynamic import, the vendored libraries included."""
    pending, seen = ["/dashboard/js/main.js"], set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        assert (await client.get(url)).status_code == 200, url
        file = STATIC_ROOT / url.removeprefix("/dashboard/")
        if file.parent.name == "js":  # our modules; the vendored libraries import nothing
            pending += [
                str((Path(url).parent / name).resolve()) if name.startswith(".") else name for name in _imports(file)
            ]

    assert {Path(url).name for url in seen} >= {
        "overview.js",
        "configs.js",
        "logs.js",
        "data.js",
        "uPlot.esm.js",
        "lightweight-charts.standalone.production.mjs",
    }


def test_the_page_loads_nothing_from_another_origin() -> None:
    """No CDN, no web font: our HTML, CSS and modules name no absolute URL except the chart library's credit link."""
    ours = [STATIC_ROOT / "index.html", STATIC_ROOT / "app.css", *sorted((STATIC_ROOT / "js").glob("*.js"))]
    found = {file.name: URL.findall(file.read_text()) for file in ours}

    assert {name: urls for name, urls in found.items() if urls} == {"data.js": ["https://"]}
    assert 'href: "https://www.tradingview.com/"' in (STATIC_ROOT / "js" / "data.js").read_text()


def test_each_vendored_library_sits_in_a_versioned_folder_beside_its_licence() -> None:
    folders = sorted((STATIC_ROOT / "vendor").iterdir())

    assert [folder.name for folder in folders] == ["lightweight-charts-5.2.1", "uplot-1.6.32"]
    assert all((folder / "LICENSE").is_file() for folder in folders)
