"""Rendering jobs: URLs and timestamps shared by every API's envelope."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from sticker_maker.api.services import Services
from sticker_maker.jobs import Job


def base_url(request: Request, svc: Services) -> str:
    """The configured public URL, else the one the client used (no trailing slash)."""
    if svc.settings.public_url:
        return svc.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def file_url(request: Request, svc: Services, name: str) -> str:
    return f"{base_url(request, svc)}/files/{name}"


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and ``Z`` (``2024-03-16T01:37:49.475Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def native_job(request: Request, svc: Services, job: Job, *, position: int | None = None) -> dict:
    """The one job envelope of the native API."""
    return job_body(job, base_url(request, svc), position=position)


def job_body(job: Job, root: str, *, position: int | None = None) -> dict:
    """The native envelope with URLs under ``root`` (also the data of webhook events)."""
    body = {
        "id": job.id,
        "status": job.status.value,
        "kind": job.kind,
        "preset": job.preset,
        "input": job.input.model_dump(),
        "output": [{**o.to_dict(), "url": f"{root}/files/{o.file}"} for o in job.output],
        "error": job.error,
        # a refusal by the content policy: code "content_blocked", stage "image" (a refused
        # prompt never makes a job: the submit itself is answered 422)
        "error_code": job.error_code,
        "error_stage": "image" if job.error_code == "content_blocked" else None,
        "logs": job.logs,
        "progress": {"step": job.progress_step, "total": job.progress_total},
        "metrics": {
            "queue_time": rounded(job.queue_time),
            "predict_time": rounded(job.predict_time),
            "total_time": rounded(job.total_time),
        },
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "urls": {
            "get": f"{root}/v1/jobs/{job.id}",
            "cancel": f"{root}/v1/jobs/{job.id}/cancel",
        },
    }
    for out in body["output"]:
        out.pop("file")
    if "image" in body["input"] and job.input_files:  # an upload: its URL, not its name
        body["input"]["image"] = f"{root}/files/{body['input']['image']}"
    if reference := body["input"].get("reference"):  # a reference picture: its URL too
        reference["image"] = f"{root}/files/{reference['image']}"
    if position is not None:
        body["queue_position"] = position
    return body
