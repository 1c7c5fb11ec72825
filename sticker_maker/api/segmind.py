"""The Segmind-compatible API: existing Segmind clients change only the base URL.

* ``POST /v1/<model>``: waits for the job and answers with the image bytes
  (``base64: true``: JSON with base64 images) plus the accounting headers
  ``x-request-id``, ``x-generation-time``, ``x-seed-value``, ``x-cost``,
  ``x-remaining-credits``.
* ``POST /v2/<model>`` → ``request_id``, ``status: "QUEUED"`` and absolute
  ``status_url`` / ``response_url`` / ``poll_url``; then
  ``GET /v2/requests/<id>/status`` and ``GET /v2/requests/<id>``.

``<model>`` is any preset name or alias. Parameters keep Segmind's names
(``num_inference_steps``, ``img_width`` …) and so do the field errors. The
ranges are the native ones, a superset of what the hosted model accepts
(steps 1-100 instead of 20-100, sizes 64-2048 in multiples of 8 instead of
512/768/1024): every request the hosted API accepts works unchanged, and
faster settings work too. Errors are ``{"error": message}``; a failed job is
HTTP 422 ``{"status": "FAILED", "error": …}``. Shapes:
``shared/reference/wire-compat.md`` §2.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from sticker_maker.accounts import ApiKey, billing
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import BINARY, body_doc, doc
from sticker_maker.api.errors import NATIVE_PREFIXES, NOT_JSON, REPLICATE_PREFIXES
from sticker_maker.api.render import base_url, file_url, rounded
from sticker_maker.api.services import Services, services
from sticker_maker.api.waiting import JobWaiter
from sticker_maker.errors import FieldError, InvalidInput, NotFound, SyncTimeout
from sticker_maker.jobs import Job, JobStatus, OutputFile
from sticker_maker.params import (
    GenerationRequest,
    JobInput,
    SchedulerName,
    resolve,
    validation_errors,
)
from sticker_maker.presets import Preset, PresetRegistry

log = logging.getLogger("sticker_maker.api")


class ModelSlug(Convertor[str]):
    """A model name in the path (``/`` allowed, for aliases like ``fofr/sticker-maker``) that
    is never one of the native or Replicate-compatible API's paths, so ``/v1/<model>`` cannot
    shadow them whatever the order routers are included in."""

    _native = "|".join(p.removeprefix("/v1/") for p in (*NATIVE_PREFIXES, *REPLICATE_PREFIXES))
    regex = rf"(?!(?:{_native})(?:/|$))[^/]+(?:/[^/]+)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segmind_model", ModelSlug())

router = APIRouter(tags=["Segmind compatible"])

#: Segmind's parameter names → GenerationRequest fields
PARAMS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "scheduler": "scheduler",
    "num_inference_steps": "steps",
    "guidance_scale": "guidance_scale",
    "samples": "samples",
    "seed": "seed",
    "img_width": "width",
    "img_height": "height",
    "lora_scale": "lora_scale",
}
_SEGMIND_NAME = {native: segmind for segmind, native in PARAMS.items()}
_ALLOWED = (*PARAMS, "base64")

STATUS = {
    JobStatus.QUEUED: "QUEUED",
    JobStatus.RUNNING: "PROCESSING",
    JobStatus.SUCCEEDED: "COMPLETED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "FAILED",  # Segmind has no canceled state
}

_BOOL = TypeAdapter(bool)


class SegmindParameters(BaseModel):
    """Parameters with Segmind's names; ranges are a superset of the hosted model's."""

    # For the API docs: requests are parsed by parse_parameters, whose errors use these names.

    prompt: str = Field(description="What to draw.")
    negative_prompt: str = Field("", description="What to avoid.")
    scheduler: SchedulerName | None = Field(None, description="Sampler (preset's default).")
    num_inference_steps: int | None = Field(None, ge=1, le=100, description="Hosted: 20-100.")
    guidance_scale: float | None = Field(None, ge=0, le=30, description="Hosted: 0.1-25.")
    samples: int = Field(1, ge=1, le=4)
    seed: int = Field(-1, ge=-1, le=2**32 - 1, description="-1 draws a random seed.")
    img_width: int | None = Field(
        None, ge=64, le=2048, multiple_of=8, description="Hosted: 512, 768, 1024."
    )
    img_height: int | None = Field(
        None, ge=64, le=2048, multiple_of=8, description="Hosted: 512, 768, 1024."
    )
    base64: bool = Field(False, description="Answer with JSON and base64 images, not bytes.")
    lora_scale: float | None = Field(None, ge=0, le=4, description="LoRA weight (preset's).")


_BODY_DOCS = body_doc(SegmindParameters)


# -- pricing --------------------------------------------------------------------


def job_cost(svc: Services, job: Job) -> float:
    """Credits the job was charged (``x-cost``): its settled predict time x price_per_second.

    The one place the Segmind routes price a job; the ledger is the truth (billing).
    """
    with svc.db.read() as conn:
        return billing.charged(conn, job.id)


# -- parsing --------------------------------------------------------------------


async def _parameters(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError):  # bad JSON or UTF-8, absurd nesting, huge integers
        raise InvalidInput(NOT_JSON, "body") from None
    if not isinstance(body, dict):
        raise InvalidInput('must be a JSON object of parameters, e.g. {"prompt": "…"}', "body")
    return body


def _preset(slug: str, svc: Services) -> Preset:
    if slug not in svc.presets:
        raise NotFound(
            f"model {slug!r} not found; available models: {', '.join(svc.presets.names())}"
        )
    return svc.presets.get(slug)


def parse_parameters(params: dict[str, Any], preset: Preset, presets: PresetRegistry) -> JobInput:
    """Segmind parameters → a resolved job input; errors name Segmind's fields."""
    errors = [
        FieldError(name, f"is not a parameter of this model; allowed: {', '.join(_ALLOWED)}")
        for name in sorted(set(params) - set(_ALLOWED))
    ]
    if errors:
        raise InvalidInput(errors)
    fields = {PARAMS[k]: v for k, v in params.items() if k in PARAMS}
    try:
        request = GenerationRequest.model_validate({**fields, "preset": preset.name})
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldError(_SEGMIND_NAME.get(e.field, e.field), e.message)
                for e in validation_errors(exc.errors())
            ]
        ) from None
    return resolve(request, presets)


def _wants_base64(params: dict[str, Any]) -> bool:
    try:
        return _BOOL.validate_python(params.get("base64", False))
    except ValidationError:
        raise InvalidInput(
            f"{params['base64']!r} is not a boolean (true or false)", "base64"
        ) from None


# -- rendering ------------------------------------------------------------------


def _images(job: Job, kind: str = "image") -> list[OutputFile]:
    return sorted((o for o in job.output if o.kind == kind), key=lambda o: o.index)


def _metrics(job: Job) -> dict[str, float | None]:
    return {
        "inference_time": rounded(job.predict_time),
        "queue_time": rounded(job.queue_time),
        "total_time": rounded(job.total_time),
    }


def _error(job: Job) -> str:
    if job.error:
        return job.error
    return "canceled by request" if job.status is JobStatus.CANCELED else "the job failed"


def _failed(job: Job) -> JSONResponse:
    return JSONResponse(
        {"request_id": job.id, "status": "FAILED", "error": _error(job)},
        status_code=422,
        headers={"x-request-id": job.id},
    )


def _b64(svc: Services, output: OutputFile) -> str:
    return base64.b64encode(svc.storage.get(output.file)).decode("ascii")


def _urls(request: Request, svc: Services, job: Job) -> dict[str, str]:
    root = f"{base_url(request, svc)}/v2/requests/{job.id}"
    return {"status_url": f"{root}/status", "response_url": root, "poll_url": f"{root}/status"}


def _request_job(svc: Services, request_id: str, key: ApiKey) -> Job:
    """The caller's job, or Segmind's 404 (also once past the retention time)."""
    try:
        job = svc.jobs.get(request_id, key.id)
    except NotFound:
        raise NotFound(f"Request {request_id} not found") from None
    expired = (
        job.completed_at is not None
        and time.time() - job.completed_at > svc.settings.retention_seconds
    )
    # an upload job of the native API (cut-out, split) is no Segmind request
    if expired or not isinstance(job.input, JobInput):
        raise NotFound(f"Request {request_id} not found")
    return job


# -- v1: synchronous ------------------------------------------------------------


@router.post(
    "/v1/{slug:segmind_model}",
    summary="Run a model synchronously (Segmind v1)",
    response_class=Response,
    openapi_extra=_BODY_DOCS,
    **doc(schemas.SegmindImages, 404, 406, 422, 504, content={"image/png": BINARY}),
)
async def run_sync(
    slug: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """Generate and answer with the first image's bytes (``base64: true``: JSON).

    Waits up to the service's ``sync_timeout`` (25 s by default); past it the
    answer is 504 and the job keeps running under ``/v2/requests/<id>``. A
    client that hangs up cancels its job.
    """
    params = await _parameters(request)
    job_input = parse_parameters(params, _preset(slug, svc), svc.presets)
    as_base64 = _wants_base64(params)
    job = await run_in_threadpool(svc.jobs.submit, key.id, job_input)
    waiter: JobWaiter = request.app.state.waiter
    job = await waiter.wait(job.id, key.id, svc.settings.sync_timeout, gone=request.is_disconnected)
    if not job.status.is_terminal:
        if await request.is_disconnected():
            log.info("client left before job %s finished; canceling it", job.id)
            await run_in_threadpool(svc.jobs.request_cancel, job.id, key.id)
            return Response(status_code=499)
        raise SyncTimeout(
            f"request {job.id} did not finish within {svc.settings.sync_timeout:g}s; it is "
            f"still running: fetch it from {_urls(request, svc, job)['response_url']} "
            "(or use the async /v2 API for long jobs)"
        )
    if job.status is not JobStatus.SUCCEEDED:
        return _failed(job)
    cost = await run_in_threadpool(job_cost, svc, job)
    balance = await run_in_threadpool(svc.keys.balance, key.id)
    headers = {
        "x-request-id": job.id,
        "x-generation-time": f"{job.predict_time or 0.0:.3f}",
        "x-seed-value": str(job.input.seed),
        "x-cost": f"{cost:.4f}",
        "x-remaining-credits": f"{balance:.4f}",
    }
    return await run_in_threadpool(_sync_answer, svc, job, as_base64, headers)


def _sync_answer(svc: Services, job: Job, as_base64: bool, headers: dict[str, str]) -> Response:
    """The finished job's images (read from storage: off the event loop)."""
    images = _images(job)
    if as_base64:
        body = {
            "status": "Success",
            "request_id": job.id,
            "image": _b64(svc, images[0]),
            "images": [_b64(svc, o) for o in images],
            "stickers": [_b64(svc, o) for o in _images(job, "sticker")],
            "seed": job.input.seed,
            "infer_time": rounded(job.predict_time),
        }
        return JSONResponse(body, headers=headers)
    first = images[0]
    return Response(svc.storage.get(first.file), media_type=first.content_type, headers=headers)


# -- v2: queue ------------------------------------------------------------------


@router.get(
    "/v2/requests/{request_id}/status",
    summary="Request status (Segmind v2)",
    **doc(schemas.SegmindStatus, 422),
)
def request_status(
    request_id: str,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """``QUEUED``, ``PROCESSING``, ``COMPLETED`` or ``FAILED`` (HTTP 422, with ``error``)."""
    job = _request_job(svc, request_id, key)
    if STATUS[job.status] == "FAILED":
        return _failed(job)
    body: dict[str, Any] = {
        "request_id": job.id,
        "status": STATUS[job.status],
        "metrics": _metrics(job),
        "progress": {"step": job.progress_step, "total": job.progress_total},
    }
    if job.status is JobStatus.QUEUED:
        body["queue_position"] = svc.jobs.queue_position(job)
    return JSONResponse(body)


@router.get(
    "/v2/requests/{request_id}",
    summary="Request result (Segmind v2)",
    **doc(schemas.SegmindResult, 422),
)
def request_result(
    request_id: str,
    request: Request,
    as_base64: bool = Query(
        False, alias="base64", description="Images as base64 data instead of URLs."
    ),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """``output`` is the image URL (a list of URLs when ``samples`` > 1); ``stickers``
    lists the transparent cut-outs. FAILED is HTTP 422."""
    job = _request_job(svc, request_id, key)
    if STATUS[job.status] == "FAILED":
        return _failed(job)
    body: dict[str, Any] = {
        "request_id": job.id,
        "status": STATUS[job.status],
        "output": None,
        "metrics": _metrics(job),
    }
    if job.status is JobStatus.SUCCEEDED:
        images, stickers = _images(job), _images(job, "sticker")
        if as_base64:
            shown = [_b64(svc, o) for o in images]
            cutouts = [_b64(svc, o) for o in stickers]
        else:
            shown = [file_url(request, svc, o.file) for o in images]
            cutouts = [file_url(request, svc, o.file) for o in stickers]
        body["output"] = shown[0] if len(shown) == 1 else shown
        body["stickers"] = cutouts
        body["seed"] = job.input.seed
        body["cost"] = round(job_cost(svc, job), 4)
    return JSONResponse(body)


@router.post(
    "/v2/{slug:segmind_model}",
    summary="Queue a model run (Segmind v2)",
    openapi_extra=_BODY_DOCS,
    **doc(schemas.SegmindQueued, 404, 406, 422),
)
async def submit(
    slug: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Queue the job; poll ``status_url`` until COMPLETED or FAILED, then GET ``response_url``."""
    params = await _parameters(request)
    job_input = parse_parameters(params, _preset(slug, svc), svc.presets)
    as_base64 = _wants_base64(params)
    job = await run_in_threadpool(svc.jobs.submit, key.id, job_input)
    urls = _urls(request, svc, job)
    if as_base64:
        urls["response_url"] += "?base64=true"
    return {"request_id": job.id, "status": "QUEUED", **urls}
