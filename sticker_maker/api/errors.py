"""Errors → HTTP responses, in one place, in each API's own envelope.

* native (``/v1/jobs`` …): ``{"error": {"code", "message", "fields"}}``
* sticker-maker-compatible (``/api/v1``): ``{"message", "code": <status>, "status_code": "error"}``
* Segmind-compatible (``/v1/<slug>``, ``/v2/…``): ``{"error": message}``
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
)


def api_family(path: str) -> str:
    if path.startswith("/api/v1/"):
        return "seed"
    native = any(path == p or path.startswith(p + "/") for p in NATIVE_PREFIXES)
    if path.startswith("/v2/") or (path.startswith("/v1/") and not native):
        return "segmind"  # /v1/<model>: whole segments, so /v1/stickersheet is a model
    return "native"


def error_body(family: str, exc: StickerMakerError) -> dict[str, Any]:
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
        error_body(family, exc), status_code=exc.status, headers=error_headers(family, exc)
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(StickerMakerError)
    async def _known(request: Request, exc: StickerMakerError) -> JSONResponse:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, InvalidInput(validation_errors(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
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
    "install",
]
