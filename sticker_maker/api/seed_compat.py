"""The sticker-maker-compatible API (``POST /api/v1/generate``, ``GET /api/v1/result``).

Existing clients change only the base URL. Shapes: ``../shared/reference/wire-compat.md`` §1.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from sticker_maker.accounts import ApiKey
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import body_doc, doc
from sticker_maker.api.render import file_url, iso, rounded
from sticker_maker.api.services import Services, services
from sticker_maker.errors import InvalidInput, NotFound
from sticker_maker.jobs import JobStatus
from sticker_maker.params import JobInput, parse_request, resolve

router = APIRouter(tags=["sticker-maker compatible"])

#: the seed API's input fields and their names in a GenerationRequest
_INPUT_FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "width": "width",
    "height": "height",
    "steps": "steps",
    "seed": "seed",
    "upscale": "upscale",
    "upscale_steps": "upscale_steps",
}

#: native status → the words of the original (Replicate) service
_STATUS = {
    JobStatus.QUEUED: "starting",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "canceled",
}


def _ok(message: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"message": message, "data": data, "code": 20000, "status_code": "success"}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        raise InvalidInput("is not valid JSON", "body") from None
    if not isinstance(body, dict):
        raise InvalidInput('must be a JSON object like {"mid": 3123, "input": {...}}', "body")
    return body


@router.post(
    "/api/v1/generate",
    summary="Submit (sticker-maker API)",
    openapi_extra=body_doc(schemas.SeedGenerate),
    **doc(schemas.SeedSubmitted, 406, 422),
)
async def generate(
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    body = await _json_object(request)
    mid = body.get("mid")
    if mid is None:
        raise InvalidInput("is required (the model id, e.g. 3123)", "mid")
    if not isinstance(mid, str | int) or isinstance(mid, bool) or mid not in svc.presets:
        raise InvalidInput(
            f"unknown model {mid!r}; available: 3123, " + ", ".join(svc.presets.names()), "mid"
        )
    raw = body.get("input")
    if not isinstance(raw, dict):
        raise InvalidInput("is required and must be an object", "input")
    unknown = sorted(set(raw) - set(_INPUT_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_INPUT_FIELDS)}", "input"
        )
    fields = {_INPUT_FIELDS[k]: v for k, v in raw.items()}
    request_model = parse_request({**fields, "preset": str(mid)}, prefix="input.")
    job = svc.jobs.submit(key.id, resolve(request_model, svc.presets))
    return _ok("post success.", {"tid": job.id})


@router.get("/api/v1/result", summary="Poll (sticker-maker API)", **doc(schemas.SeedResult, 404))
def result(
    request: Request,
    tid: str = Query(..., description="the tid returned by /api/v1/generate"),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    job = svc.jobs.get(tid, key.id)
    if not isinstance(job.input, JobInput):  # an upload job of the native API
        raise NotFound(f"job {tid} is a {job.kind} job; read it at /v1/jobs/{tid}")
    first = [o for o in job.output if o.index == 0]
    data = {
        "tid": job.id,
        "status": _STATUS[job.status],
        "input": {
            "prompt": job.input.prompt,
            "negative_prompt": job.input.negative_prompt,
            "width": job.input.width,
            "height": job.input.height,
            "steps": job.input.steps,
            "seed": job.input.seed,
            "upscale": job.input.upscale,
            "upscale_steps": job.input.upscale_steps,
        },
        "output": [file_url(request, svc, o.file) for o in first],
        "error": job.error,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "predict_time": rounded(job.predict_time),
        "total_time": rounded(job.total_time),
    }
    return _ok("get success.", data)
