"""The native API: one job envelope everywhere."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from sticker_maker.accounts import ApiKey, idempotency, webhooks
from sticker_maker.api.auth import current_key
from sticker_maker.api.render import base_url, native_job
from sticker_maker.api.services import Services, services
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.params import GenerationRequest, resolve

router = APIRouter(tags=["native"])


def _envelope(request: Request, svc: Services, job: Job) -> dict[str, Any]:
    position = svc.jobs.queue_position(job) if job.status is JobStatus.QUEUED else None
    return native_job(request, svc, job, position=position)


class JobRequest(GenerationRequest):
    """A native submit: generation parameters plus an optional webhook."""

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


@router.post("/v1/jobs", status_code=201, summary="Submit a generation job")
def create_job(
    body: JobRequest,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        description="Retry-safe submits: the same key and body replays the first response",
    ),
) -> Any:
    """Queue a job. Poll ``GET /v1/jobs/{id}`` (or its ``urls.get``) until it is terminal.

    Costs credits: the upper estimate is reserved now (406 if the balance is short) and
    settled to the measured GPU time when the job ends; failed or canceled jobs cost nothing.
    """
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
        return _envelope(request, svc, svc.jobs.submit(key.id, job_input, webhook=hook))

    digest = idempotency.request_hash(body.model_dump(mode="json"))
    replay = svc.idempotency.begin(key.id, idempotency_key, digest)
    if replay is not None:
        if replay.body is not None and replay.status is not None:
            content, status = replay.body, replay.status
        else:  # the first request made its job but died before answering
            content, status = _envelope(request, svc, svc.jobs.get(replay.job_id, key.id)), 201
        return JSONResponse(content, status_code=status, headers={"Idempotent-Replayed": "true"})
    try:
        job = svc.jobs.submit(
            key.id,
            job_input,
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


@router.get("/v1/jobs", summary="Your recent jobs")
def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return {
        "jobs": [native_job(request, svc, j) for j in svc.jobs.list_for_key(key.id, limit=limit)]
    }


@router.get("/v1/jobs/{job_id}", summary="A job's envelope")
def get_job(
    job_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    return _envelope(request, svc, svc.jobs.get(job_id, key.id))


@router.post("/v1/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
def cancel_job(
    job_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """A queued job is cancelled at once; a running one stops at its next step."""
    return _envelope(request, svc, svc.jobs.request_cancel(job_id, key.id))


@router.get("/v1/presets", summary="Available presets")
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
            }
            for p in svc.presets.all()
        ]
    }
