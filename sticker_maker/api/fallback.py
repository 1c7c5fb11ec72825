"""The last routes: any other path under ``/v1`` or ``/v2`` is a 404, whatever the method.

Without them a path that only differs in method from a route (``GET /v1/<model>``,
``DELETE /v1/jobs/{id}``) would answer 405, and a path under a family's prefix would
fall through to the Segmind model lookup. The error is rendered in the path's family
(``api.errors``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from sticker_maker.errors import NotFound

router = APIRouter(include_in_schema=False)

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/v1/{rest:path}", methods=_METHODS)
@router.api_route("/v2/{rest:path}", methods=_METHODS)
def not_found(rest: str, request: Request) -> None:
    raise NotFound(f"no such route: {request.method} {request.url.path} (see /docs)")
