"""Errors → HTTP responses, in one place, in each API's own envelope.

* native (``/v1/jobs`` …): ``{"error": {"code", "message", "fields"}}``
* sticker-maker-compatible (``/api/v1``): ``{"message", "code": <status>, "status_code": "error"}``
* Segmind-compatible (``/v1/<slug>``, ``/v2/…``): ``{"error": message}``
* Replicate-compatible (``/v1/predictions``, ``/v1/models`` …): RFC 7807 problem details
  ``{"type", "title", "status", "detail"}`` (``application/problem+json``); invalid input
  is 422 there, as Replicate answers, and ``detail`` names the field
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sticker_maker.errors import (
    ContentBlocked,
    FieldError,
    InvalidInput,
    MethodNotAllowed,
    RateLimited,
    ServiceBusy,
    StickerMakerError,
)
from sticker_maker.faults import unavailable
from sticker_maker.params import validation_errors

log = logging.getLogger("sticker_maker.api")

NATIVE_PREFIXES = (
    "/v1/jobs",
    "/v1/account",
    "/v1/presets",
    "/v1/keys",
    "/v1/stickers",
    "/v1/cutouts",
    "/v1/splits",
    "/v1/exports",
    "/v1/packs",
    "/v1/expressions",
)

#: the Replicate-compatible API's paths (never a Segmind model name)
REPLICATE_PREFIXES = (
    "/v1/predictions",
    "/v1/models",
    "/v1/deployments",
    "/v1/files",
    "/v1/webhooks",
    "/v1/collections",
    "/v1/hardware",
    "/v1/trainings",
)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def api_family(path: str) -> str:
    if path.startswith("/api/v1/"):
        return "seed"
    if _under(path, REPLICATE_PREFIXES):
        return "replicate"
    native = _under(path, NATIVE_PREFIXES)
    if path.startswith("/v2/") or (path.startswith("/v1/") and not native):
        return "segmind"  # /v1/<model>: whole segments, so /v1/stickersheet is a model
    return "native"


def error_status(family: str, exc: StickerMakerError) -> int:
    """Replicate answers invalid input with 422; the other APIs keep each error's own status."""
    if family == "replicate" and isinstance(exc, InvalidInput):
        return 422
    return exc.status


def problem(exc: StickerMakerError, status: int) -> dict[str, Any]:
    """RFC 7807 problem details; ``detail`` is what the replicate client shows."""
    body: dict[str, Any] = {
        "type": f"https://sticker-maker.dev/problems/{exc.code.replace('_', '-')}",
        "title": _TITLES.get(status, exc.code.replace("_", " ").capitalize()),
        "status": status,
        "detail": exc.message,
    }
    if isinstance(exc, InvalidInput):
        body["invalid_fields"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    return body


_TITLES = {
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Insufficient credits",
    409: "Conflict",
    413: "Payload too large",
    422: "Input validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service busy",
    504: "Timeout",
}


def error_body(family: str, exc: StickerMakerError) -> dict[str, Any]:
    if family == "replicate":
        return problem(exc, error_status(family, exc))
    if family == "seed":
        return {"message": exc.message, "code": exc.status, "status_code": "error"}
    if family == "segmind":
        if isinstance(exc, ContentBlocked):  # as a failed request: Segmind's FAILED
            return {"status": "FAILED", "error": exc.message}
        return {"error": exc.message}
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, InvalidInput):
        body["fields"] = [{"field": e.field, "message": e.message} for e in exc.errors]
    if isinstance(exc, RateLimited | ServiceBusy):
        body["retry_after"] = exc.retry_after
    if isinstance(exc, ContentBlocked):
        body["stage"] = exc.stage
    return {"error": body}


def error_headers(family: str, exc: StickerMakerError) -> dict[str, str]:
    """``Retry-After`` (whole seconds, rounded up) on 429/503; Segmind's reset time on 429."""
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, RateLimited | ServiceBusy):
        wait = max(1, math.ceil(exc.retry_after))
        headers["Retry-After"] = str(wait)
        if family == "segmind" and isinstance(exc, RateLimited):
            reset = datetime.fromtimestamp(time.time() + wait, UTC)
            headers["x-rate-limit-reset-at-utc"] = reset.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return headers


def error_response(request: Request, exc: StickerMakerError) -> JSONResponse:
    family = api_family(request.url.path)
    return JSONResponse(
        error_body(family, exc),
        status_code=error_status(family, exc),
        headers=error_headers(family, exc),
        media_type="application/problem+json" if family == "replicate" else None,
    )


#: said of a body that is not JSON a route can read: bad syntax, not UTF-8, nesting past
#: the parser's recursion limit, or an integer of more than 4300 digits (as every API says it)
NOT_JSON = "is not valid JSON"
#: FastAPI's 400 when ``json.loads`` raised something else than a syntax error
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def _body_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The validation errors, a JSON syntax error naming ``body`` (not its byte offset)."""
    errors = list(exc.errors())
    for i, err in enumerate(errors):
        if err.get("type") == "json_invalid":
            errors[i] = {**err, "loc": ("body",), "msg": NOT_JSON}
    return errors


def install(app: FastAPI) -> None:
    @app.exception_handler(StickerMakerError)
    async def _known(request: Request, exc: StickerMakerError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, InvalidInput(validation_errors(_body_errors(exc))))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            return error_response(request, InvalidInput(NOT_JSON, "body"))  # nesting, huge int
        if exc.status_code == 405:  # RFC 9110: a 405 says which methods the path takes
            from sticker_maker.api.fallback import wrong_method

            return error_response(request, wrong_method(request))
        err = StickerMakerError(str(exc.detail))
        err.status = exc.status_code
        err.code = {
            404: "not_found",
            405: "method_not_allowed",
            408: "request_timeout",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        return error_response(request, err)

    async def _infrastructure(request: Request, exc: Exception) -> JSONResponse:
        # disk full or database away: 503 + Retry-After, the detail for the operator
        fault = unavailable(exc)
        if fault is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error_response(request, StickerMakerError("internal server error"))
        log.warning("%s on %s %s: %s", fault.reason, request.method, request.url.path, exc)
        return error_response(request, fault)

    app.add_exception_handler(SQLAlchemyError, _infrastructure)
    app.add_exception_handler(OSError, _infrastructure)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, StickerMakerError("internal server error"))


__all__ = [
    "FieldError",
    "api_family",
    "error_body",
    "error_headers",
    "error_response",
    "error_status",
    "install",
    "problem",
]
