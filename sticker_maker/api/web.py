"""The web app: ``/`` serves the page, ``/web/<version>/…`` its CSS, ES modules and icons.

The files are plain package data in ``sticker_maker/web`` (no build step, no Node.js).
Caching: the page itself is ``no-cache`` (revalidated with its ETag, so a new release is
picked up on the next load); every asset URL carries a version hashed from the folder's
contents, so assets are ``immutable`` for a year and a release never mixes old and new
modules. The page uses relative URLs throughout, so it also works behind a path prefix.

Include this router last: its routes never shadow an API route.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from sticker_maker.api.contract import BINARY, doc
from sticker_maker.api.services import Services, services
from sticker_maker.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def assets_version(root: Path = WEB_DIR) -> str:
    """A short hash of every file's name and bytes: changes whenever any asset does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _content_security_policy(public_url: str | None) -> str:
    """Only this service's own origin (and the public URL's, where outputs are served)."""
    extra = ""
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme and parts.netloc:
            extra = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; "
        f"img-src 'self' data: blob:{extra}; "
        f"connect-src 'self'{extra}; "
        "script-src 'self'; style-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


@router.get(
    "/",
    summary="The web app",
    **doc(content={"text/html": {"schema": {"type": "string"}}}, others={304: None}),
)
def index(request: Request, svc: Services = Depends(services)) -> Response:
    version = assets_version()
    etag = f'"{version}"'
    headers = {
        "Cache-Control": _REVALIDATE,
        "ETag": etag,
        "Content-Security-Policy": _content_security_policy(svc.settings.public_url),
        **_SECURITY,
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    html = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{ASSETS}}", f"web/{version}")
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


@router.get("/web/{version}/{path:path}", summary="A web app asset", **doc(content={"*/*": BINARY}))
def asset(version: str, path: str) -> Response:
    target = (WEB_DIR / path).resolve()
    if (
        not path
        or not target.is_relative_to(WEB_DIR)
        or not target.is_file()
        or target.name == "index.html"
    ):
        raise NotFound(f"no web asset {path!r}")
    # an asset asked for under an older version is the current file: never let that be cached
    cache = _IMMUTABLE if version == assets_version() else _REVALIDATE
    return FileResponse(
        target,
        media_type=_TYPES.get(target.suffix, "application/octet-stream"),
        headers={"Cache-Control": cache, **_SECURITY},
    )
