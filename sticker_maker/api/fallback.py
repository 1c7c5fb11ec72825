"""The last routes: any other path under ``/v1`` or ``/v2``, whatever the method.

* A fixed path of another route (``/v1/account``, ``/v1/jobs``) asked with a method it
  does not take: 405 with ``Allow`` (RFC 9110).
* Anything else: 404. A templated path (``DELETE /v1/jobs/{id}``, ``GET /v1/<model>``) is
  not looked up, so it is a 404 too: no resource there takes that method.

Without these routes a path that only differs in method from a route would answer 405
for any path (``GET /v1/<anything>`` matches the Segmind model route), and a path under a
family's prefix would fall through to the Segmind model lookup. The error is rendered in
the path's family (``api.errors``), which also calls :func:`wrong_method` for the 405s of
the routes outside ``/v1`` and ``/v2``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.routing import iter_route_contexts

from sticker_maker.errors import MethodNotAllowed, NotFound, StickerMakerError

router = APIRouter(include_in_schema=False)

#: every method a client may send (``FOO`` and the like get the same answer from Starlette)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]


def allowed_methods(request: Request, *, fixed_only: bool = False) -> list[str]:
    """The methods the app's routes take on this path (``fixed_only``: routes whose path
    has no parameter), this module's routes left out."""
    path = request.url.path
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.endpoint is not_found or not route.methods:
            continue
        if fixed_only and route.param_convertors:
            continue
        if route.path_regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def wrong_method(request: Request) -> StickerMakerError:
    """405 with the methods this path takes, or 404 where no route of the path is fixed."""
    under_api = request.url.path.startswith(("/v1/", "/v2/"))
    allowed = allowed_methods(request, fixed_only=under_api)
    if allowed:
        return MethodNotAllowed(request.method, request.url.path, allowed)
    return NotFound(f"no such route: {request.method} {request.url.path} (see /docs)")


@router.api_route("/v1/{rest:path}", methods=_METHODS)
@router.api_route("/v2/{rest:path}", methods=_METHODS)
def not_found(rest: str, request: Request) -> None:
    raise wrong_method(request)
