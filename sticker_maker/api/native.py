"""The native API: one job envelope everywhere."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey, idempotency, webhooks
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key, read
from sticker_maker.api.contract import doc
from sticker_maker.api.references import (
    PendingReference,
    ReferenceFields,
    guidance,
    read_reference,
)
from sticker_maker.api.references import submit as submit_job
from sticker_maker.api.render import base_url, native_job
from sticker_maker.api.services import Services, services
from sticker_maker.errors import InvalidInput
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.params import GenerationRequest, resolve

router = APIRouter(tags=["native"])

#: the longest ``Prefer: wait`` (Replicate's bound); plain ``Prefer: wait`` means this
MAX_WAIT = 60


def prefer_wait(header: str | None) -> int | None:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), or None when not asked."""
    for preference in (header or "").split(","):
        token = preference.split(";", 1)[0].strip()
        name, _, value = token.partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT
        if not value.isdigit() or not 1 <= int(value) <= MAX_WAIT:
            raise InvalidInput(
                f"wait={value} is not allowed; use wait=N with N from 1 to {MAX_WAIT} seconds",
                "Prefer",
            )
        return int(value)
    return None


def _envelope(request: Request, svc: Services, job: Job) -> dict[str, Any]:
    position = svc.jobs.queue_position(job) if job.status is JobStatus.QUEUED else None
    return native_job(request, svc, job, position=position)


class JobRequest(GenerationRequest, ReferenceFields):
    """A native submit: generation parameters, an optional reference picture (stickers
    of its subject) and an optional webhook."""

    webhook: str | None = Field(
        default=None,
        max_length=webhooks.MAX_URL,
        description="http(s) URL to POST signed events to (Standard Webhooks; see README)",
    )
    webhook_events_filter: list[Literal["start", "progress", "completed"]] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description='events to send; default ["completed"]',
    )


#: the ``Prefer`` header of the routes that queue a native job (submit, cut-outs, splits)
PREFER = Header(
    None,
    description="`wait=N` (1-60, or `wait` alone for 60): answer when the job finishes, "
    "or with the envelope as it stands after N seconds.",
)


async def waited(request: Request, response: Response, key: ApiKey, job_id: str, wait: int) -> Job:
    """The job once finished, or as it stands after ``wait`` seconds (``Prefer: wait``)."""
    job = await request.app.state.waiter.wait(job_id, key.id, wait, gone=request.is_disconnected)
    response.headers["Preference-Applied"] = f"wait={wait}"
    return job


@router.post(
    "/v1/jobs",
    status_code=201,
    summary="Submit a generation job",
    **doc(schemas.Job, 406, 409, 422, status=201),
)
async def create_job(
    body: JobRequest,
    request: Request,
    response: Response,
    prefer: str | None = PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        description="Retry-safe submits: the same key and body replays the first response",
    ),
) -> Any:
    """Queue a job. Poll ``GET /v1/jobs/{id}`` (or its ``urls.get``) until it is terminal,
    or send ``Prefer: wait=N`` to get the finished job in this response when it takes ≤ N s.

    Costs credits: the upper estimate is reserved now (406 if the balance is short) and
    settled to the measured GPU time when the job ends; failed or canceled jobs cost nothing.
    """
    wait = prefer_wait(prefer)
    if body.prompt_strength is not None:  # face-to-sticker's name for the CFG scale
        cfg = guidance(body.prompt_strength, body.guidance_scale)
        body = body.model_copy(update={"guidance_scale": cfg, "prompt_strength": None})
    pending = await read_reference(body, body.preset, request, key, svc)
    submitted = await run_in_threadpool(_submit, body, request, key, svc, idempotency_key, pending)
    if isinstance(submitted, JSONResponse) or not wait:
        return submitted  # an idempotent replay answers as the first request did
    job = await waited(request, response, key, submitted["id"], wait)
    return await run_in_threadpool(_envelope, request, svc, job)


def _submit(
    body: JobRequest,
    request: Request,
    key: ApiKey,
    svc: Services,
    idempotency_key: str | None,
    pending: PendingReference | None = None,
) -> dict[str, Any] | JSONResponse:
    """Queue the job (blocking database work): its envelope, or the replay of a first answer."""
    hook = None
    if body.webhook is not None:
        hook = webhooks.config(
            body.webhook,
            body.webhook_events_filter,
            base_url(request, svc),
            svc.settings.webhook_allow_networks,
        )
    job_input = resolve(body, svc.presets)
    if idempotency_key is None:
        job = submit_job(svc, key.id, job_input, pending, webhook=hook)
        return _envelope(request, svc, job)

    digest = idempotency.request_hash(body.model_dump(mode="json"))
    replay = svc.idempotency.begin(key.id, idempotency_key, digest)
    if replay is not None:
        if replay.body is not None and replay.status is not None:
            content, status = replay.body, replay.status
        else:  # the first request made its job but died before answering
            content, status = _envelope(request, svc, svc.jobs.get(replay.job_id, key.id)), 201
        return JSONResponse(content, status_code=status, headers={"Idempotent-Replayed": "true"})
    try:
        job = submit_job(
            svc,
            key.id,
            job_input,
            pending,
            webhook=hook,
            on_created=lambda conn, job_id: svc.idempotency.bind_job(
                conn, key.id, idempotency_key, job_id
            ),
        )
    except BaseException:
        svc.idempotency.release(key.id, idempotency_key)
        raise
    envelope = _envelope(request, svc, job)
    svc.idempotency.finish(key.id, idempotency_key, 201, envelope)
    return envelope


@router.get("/v1/jobs", summary="Your recent jobs", **doc(schemas.JobList))
def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return {
        "jobs": [native_job(request, svc, j) for j in svc.jobs.list_for_key(key.id, limit=limit)]
    }


@router.get("/v1/jobs/{job_id}", summary="A job's envelope", **doc(schemas.Job))
async def get_job(
    job_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> JSONResponse:
    """The job envelope (the poll route: one read, rendered straight to JSON)."""
    job, position = await read(svc, svc.jobs.get_with_position, job_id, key.id)
    return JSONResponse(native_job(request, svc, job, position=position))


@router.post(
    "/v1/jobs/{job_id}/cancel", summary="Cancel a queued or running job", **doc(schemas.Job)
)
def cancel_job(
    job_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """A queued job is cancelled at once; a running one stops at its next step."""
    return _envelope(request, svc, svc.jobs.request_cancel(job_id, key.id))


@router.get("/v1/presets", summary="Available presets", **doc(schemas.PresetList))
def list_presets(svc: Services = Depends(services)) -> dict[str, Any]:
    return {
        "presets": [
            {
                "name": p.name,
                "aliases": list(p.aliases),
                "base": p.base,
                "lora": p.lora,
                "scheduler": p.scheduler,
                "steps": p.steps,
                "guidance_scale": p.guidance_scale,
                "width": p.width,
                "height": p.height,
                "price_per_second": p.price_per_second,
                # whether upscale=true can run (the reason is for the operator: logs)
                "upscale": p.upscale_problem() is None,
            }
            for p in svc.presets.all()
        ]
    }
