"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), working offline.

FastAPI's own pages load their JavaScript and CSS from a CDN, so they are blank on a
machine without internet. Here the assets come from the ``fastapi-offline`` package (MIT;
it ships Swagger UI 5 and ReDoc 2 as released by their projects, Apache-2.0 and MIT) and
are served under ``/docs/assets/``; the pages reference nothing else.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

from sticker_maker.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "/docs/assets"
#: the files served, and their types (nothing else of the package is reachable)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_CACHE = {"Cache-Control": "public, max-age=86400"}
#: ReDoc's sidebar shows a logo from its CDN (hidden when it does not load): images only
#: from here, so the pages never reach out, online or not
_LOCAL_IMAGES = {"Content-Security-Policy": "img-src 'self' data:"}


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
    )
    page.headers.update(_LOCAL_IMAGES)
    return page


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(_LOCAL_IMAGES)
    return page


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no docs asset {name[:64]!r}")
    data = (files("fastapi_offline") / "static" / name).read_bytes()
    return Response(data, media_type=media_type, headers=_CACHE)
