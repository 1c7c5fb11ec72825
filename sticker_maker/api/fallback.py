"""The last routes: any other path under ``/v1`` or ``/v2`` is a 404, whatever the method.

Without them a path that only differs in method from a route (``GET /v1/<model>``,
``DELETE /v1/jobs/{id}``, ``TRACE /v1/account``) would answer 405, and a path under a
family's prefix would fall through to the Segmind model lookup. The error is rendered in
the path's family (``api.errors``).

Outside ``/v1`` and ``/v2`` (``/health``, ``/api/v1/…``, ``/files/…``) a known path asked
with another method is a 405 whose ``Allow`` lists the methods it takes (RFC 9110):
``api.errors`` asks :func:`wrong_method` for it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.routing import iter_route_contexts

from sticker_maker.errors import MethodNotAllowed, NotFound, StickerMakerError

router = APIRouter(include_in_schema=False)

#: every method a client may send (any other, ``FOO``, gets the same answer via api.errors)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]


def allowed_methods(request: Request) -> list[str]:
    """The methods the app's routes (but these) take on this request's path."""
    path = request.url.path
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.endpoint is not_found or not route.methods:
            continue
        if route.path_regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def wrong_method(request: Request) -> StickerMakerError:
    """404 under ``/v1`` and ``/v2``; elsewhere 405 with the methods the path takes."""
    allowed = [] if request.url.path.startswith(("/v1/", "/v2/")) else allowed_methods(request)
    if allowed:
        return MethodNotAllowed(request.method, request.url.path, allowed)
    return NotFound(f"no such route: {request.method} {request.url.path} (see /docs)")


@router.api_route("/v1/{rest:path}", methods=_METHODS)
@router.api_route("/v2/{rest:path}", methods=_METHODS)
def not_found(rest: str, request: Request) -> None:
    raise wrong_method(request)
