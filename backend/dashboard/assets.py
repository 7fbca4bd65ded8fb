"""The page's files, read once: each with its media type, an ETag and, when it pays, a gzip body."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC_ROOT = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SERVED_SUFFIXES = frozenset(MEDIA_TYPES)  # licences and notes stay in the tree, not on the wire


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None  # None when compressing does not make it smaller
    etag: str
    media_type: str


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    compressed = gzip.compress(body, compresslevel=9, mtime=0)
    media_type = MEDIA_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Asset(
        body=body,
        gzipped=compressed if len(compressed) < len(body) else None,
        etag=f'"{hashlib.sha256(body).hexdigest()[:20]}"',
        media_type=media_type,
    )


@cache
def dashboard_assets(root: Path = STATIC_ROOT) -> Mapping[str, Asset]:
    """Every servable file under ``root`` by its path relative to it (``js/main.js``)."""
    return {
        path.relative_to(root).as_posix(): _asset(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in SERVED_SUFFIXES
    }
