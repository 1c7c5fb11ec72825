"""Live progress as server-sent events, without polling by the client.

* ``GET /v1/jobs/{id}/events`` (native): ``queue`` (``{"position": n}`` while queued),
  ``progress`` (``{"step": n, "total": N}``), ``logs`` (``{"text": new lines}``),
  ``preview`` (``{"image": "data:image/jpeg;base64,…"}``: the latest live preview, when
  the operator turned previews on and the job's images are not checked) and, last,
  ``done`` (the job's envelope). Each event has an ``id`` (a counter).
* The Replicate-compatible ``urls.stream`` formats the same watch as Replicate's events
  (``api/replicate.py``).

The watch reads the job when the in-process worker (or PostgreSQL's NOTIFY) says it
finished, and otherwise every ``interval`` seconds: one indexed read, far cheaper than
a client's poll through the whole HTTP stack. The stream ends when the job does, or
when the client hangs up.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import EVENT_STREAM, doc
from sticker_maker.api.render import native_job
from sticker_maker.api.services import Services, services
from sticker_maker.api.waiting import JobWaiter
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.storage import Storage, preview_name

router = APIRouter(tags=["native"])

#: seconds between reads while nothing wakes the watch
INTERVAL = 0.5
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def watch(
    waiter: JobWaiter,
    job_id: str,
    key_id: str,
    gone: Callable[[], Awaitable[bool]],
    interval: float = INTERVAL,
) -> AsyncIterator[Job]:
    """The job now, then each time it is read again, until it is terminal or the client left.

    The first read raises NotFound before anything is streamed (a plain 404)."""
    wait = 0.0  # the first read at once
    while True:
        job = await waiter.wait(job_id, key_id, wait, gone=gone)
        wait = interval
        yield job
        if job.status.is_terminal or await gone():
            return


def sse(event: str, data: str, event_id: int) -> bytes:
    """One server-sent event (``data`` split over lines as the format asks)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\nid: {event_id}\n{lines}\n".encode()


async def first_and_rest(jobs: AsyncIterator[Job]) -> tuple[Job, AsyncIterator[Job]]:
    """Read the first snapshot now (so a wrong id is a 404, not an empty stream)."""
    first = await jobs.__anext__()

    async def rest() -> AsyncIterator[Job]:
        yield first
        async for job in jobs:
            yield job

    return first, rest()


@router.get(
    "/v1/jobs/{job_id}/events",
    summary="A job's progress as server-sent events",
    response_class=StreamingResponse,
    **doc(content=EVENT_STREAM),
)
async def job_events(
    job_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> StreamingResponse:
    """``queue`` → ``progress`` (step n of N) and ``logs`` → ``done`` (the envelope).

    Read it with any SSE client (``EventSource`` in a browser, ``curl -N``); the SDK's
    ``wait(on_progress=…)`` does. Ends after ``done``."""
    waiter: JobWaiter = request.app.state.waiter
    _, jobs = await first_and_rest(watch(waiter, job_id, key.id, request.is_disconnected))
    return StreamingResponse(
        _native_events(jobs, request, svc), media_type="text/event-stream", headers=HEADERS
    )


async def _native_events(
    jobs: AsyncIterator[Job], request: Request, svc: Services
) -> AsyncIterator[bytes]:
    sent: dict[str, Any] = {"position": None, "progress": None, "logs": 0, "preview": None}
    n = 0
    async for job in jobs:
        if job.status is JobStatus.QUEUED:
            position = await run_in_threadpool(svc.jobs.queue_position, job)
            if position != sent["position"]:
                n += 1
                yield sse("queue", json.dumps({"position": position}), n)
                sent["position"] = position
        progress = (job.progress_step, job.progress_total)
        if job.status is not JobStatus.QUEUED and progress != sent["progress"]:
            n += 1
            yield sse("progress", json.dumps({"step": progress[0], "total": progress[1]}), n)
            sent["progress"] = progress
        if len(job.logs) > sent["logs"]:
            n += 1
            yield sse("logs", json.dumps({"text": job.logs[sent["logs"] :]}), n)
            sent["logs"] = len(job.logs)
        if job.status is JobStatus.RUNNING:
            preview = await run_in_threadpool(latest_preview, svc.storage, job.id)
            if preview is not None and preview != sent["preview"]:
                n += 1
                image = "data:image/jpeg;base64," + base64.b64encode(preview).decode()
                yield sse("preview", json.dumps({"image": image}), n)
                sent["preview"] = preview
        if job.status.is_terminal:
            n += 1
            yield sse("done", json.dumps(native_job(request, svc, job)), n)


def latest_preview(storage: Storage, job_id: str) -> bytes | None:
    """The running job's latest live preview (the worker keeps it at a fixed name), or None."""
    try:
        return storage.get(preview_name(job_id))
    except Exception:  # none yet, or storage away: the stream goes on without it
        return None
