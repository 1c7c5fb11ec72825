"""The Replicate-compatible API: code written for Replicate runs with only the base URL changed.

``REPLICATE_BASE_URL=http://HOST:PORT`` (no ``/v1``) and a sticker-maker key as
``REPLICATE_API_TOKEN``; then ``replicate.run("fofr/sticker-maker", input=…)`` and the
rest of the client work unchanged:

* ``POST /v1/predictions`` (``version``: an id or ``owner/name:id``),
  ``POST /v1/models/{owner}/{name}/predictions`` (the latest version),
  ``POST /v1/deployments/{owner}/{name}/predictions`` (every model is also a deployment
  of its latest version); ``Prefer: wait[=N]`` answers with the finished prediction, or
  with it as it stands after N seconds, saying ``starting`` so the client polls;
* ``GET /v1/predictions`` (cursor pages, newest first), ``GET /v1/predictions/{id}``,
  ``POST /v1/predictions/{id}/cancel``, ``GET /v1/predictions/{id}/stream`` (SSE:
  ``logs``, ``output``, ``error``, ``done``);
* ``GET /v1/models``, ``GET /v1/models/{owner}/{name}``, ``…/versions``,
  ``…/versions/{id}`` (with Cog's ``openapi_schema``);
* ``GET /v1/webhooks/default/secret`` (the key's signing secret); ``GET /v1/account``
  (the native account route also carries Replicate's fields).

A job is one job whichever API made it: the native API sees these too. Errors are
problem details (``api.errors``). Models, versions and the translation of inputs and
outputs: ``api/replicate_models.py``.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select, update
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey, webhooks
from sticker_maker.api import face_to_sticker, schemas
from sticker_maker.api.auth import current_key, read
from sticker_maker.api.contract import EVENT_STREAM, doc
from sticker_maker.api.events import HEADERS, first_and_rest, sse, watch
from sticker_maker.api.native import prefer_wait
from sticker_maker.api.references import PendingReference, ReferenceFields, read_reference
from sticker_maker.api.references import submit as submit_job
from sticker_maker.api.render import base_url
from sticker_maker.api.replicate_models import (
    COG_VERSION,
    Asked,
    Catalogue,
    Version,
    output_urls,
    prediction,
)
from sticker_maker.api.services import Services, services
from sticker_maker.api.waiting import JobWaiter
from sticker_maker.db import jobs
from sticker_maker.errors import InvalidInput, NotFound
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.presets import PresetRegistry

router = APIRouter(tags=["Replicate compatible"])

#: predictions per page of ``GET /v1/predictions``
PAGE = 100

_catalogues: weakref.WeakKeyDictionary[PresetRegistry, Catalogue] = weakref.WeakKeyDictionary()


def catalogue(svc: Services) -> Catalogue:
    found = _catalogues.get(svc.presets)
    if found is None:
        found = _catalogues[svc.presets] = Catalogue(svc.presets)
    return found


class PredictionBody(BaseModel):
    """What ``replicate`` sends to create a prediction."""

    model_config = ConfigDict(extra="ignore")

    version: str | None = Field(
        default=None, max_length=300, description="a version id, or owner/name:id"
    )
    input: dict[str, Any] = Field(default_factory=dict, description="the model's inputs")
    webhook: str | None = Field(default=None, max_length=webhooks.MAX_URL)
    webhook_completed: str | None = Field(
        default=None, max_length=webhooks.MAX_URL, description="older form: completed only"
    )
    webhook_events_filter: list[Literal["start", "output", "logs", "completed"]] | None = Field(
        default=None, min_length=1, max_length=4
    )
    stream: bool | None = Field(default=None, description="always available here")


_PREFER = Header(
    None, description="`wait` (60 s) or `wait=N` (1-60): answer when the prediction finishes"
)


# -- create ---------------------------------------------------------------------------


@router.post(
    "/v1/predictions",
    status_code=201,
    summary="Create a prediction (by version)",
    **doc(schemas.Prediction, 404, 406, status=201),
)
async def create_prediction(
    body: PredictionBody,
    request: Request,
    response: Response,
    prefer: str | None = _PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Any:
    if not body.version:
        raise InvalidInput("is required: a version id, or owner/name:id", "version")
    version = catalogue(svc).version(body.version)
    return await _create(version, body, request, response, prefer, key, svc)


@router.post(
    "/v1/models/{owner}/{name}/predictions",
    status_code=201,
    summary="Create a prediction (a model's latest version)",
    **doc(schemas.Prediction, 406, status=201),
)
async def create_model_prediction(
    owner: str,
    name: str,
    body: PredictionBody,
    request: Request,
    response: Response,
    prefer: str | None = _PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Any:
    _, _, versions = catalogue(svc).model(owner, name)
    return await _create(versions[0], body, request, response, prefer, key, svc)


@router.post(
    "/v1/deployments/{owner}/{name}/predictions",
    status_code=201,
    summary="Create a prediction (a deployment: each model is one, of its latest version)",
    **doc(schemas.Prediction, 406, status=201),
)
async def create_deployment_prediction(
    owner: str,
    name: str,
    body: PredictionBody,
    request: Request,
    response: Response,
    prefer: str | None = _PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Any:
    try:
        _, _, versions = catalogue(svc).model(owner, name)
    except NotFound as exc:
        raise NotFound(f"deployment {owner}/{name} not found: {exc.message}") from None
    return await _create(versions[0], body, request, response, prefer, key, svc)


async def _create(
    version: Version,
    body: PredictionBody,
    request: Request,
    response: Response,
    prefer: str | None,
    key: ApiKey,
    svc: Services,
) -> Any:
    arrived = time.monotonic()
    wait = prefer_wait(prefer)
    pending = None
    if version.kind == "face":  # fofr/face-to-sticker: read and check the picture first
        pending = await face_reference(version, body.input, request, key, svc)
    job, asked = await run_in_threadpool(_submit, version, body, request, key, svc, pending)
    root = base_url(request, svc)
    if wait:
        # the client reads for wait + 0.5 s: answer by then, counting from the arrival
        left = max(0.0, arrival_margin(arrived, wait))
        waiter: JobWaiter = request.app.state.waiter
        job = await waiter.wait(job.id, key.id, left, gone=request.is_disconnected)
        response.headers["Preference-Applied"] = f"wait={wait}"
    return prediction(job, asked, root, waited=bool(wait))


#: how much sooner than ``wait`` seconds after its arrival a waiting request answers
ANSWER_MARGIN = 0.4


def arrival_margin(arrived: float, wait: int) -> float:
    """Seconds left to wait: ``wait`` from the arrival, less the answer's margin."""
    return arrived + wait - ANSWER_MARGIN - time.monotonic()


def _submit(
    version: Version,
    body: PredictionBody,
    request: Request,
    key: ApiKey,
    svc: Services,
    pending: PendingReference | None = None,
) -> tuple[Job, Asked]:
    job_input = version.job_input(body.input, svc.presets)
    root = base_url(request, svc)
    hook = _webhook(body, root, svc)
    shown = body.input
    if pending is not None:
        shown = face_to_sticker.shown_input(body.input, f"{root}/files/{pending.name}")
    asked = version.asked(shown)
    stored = asked.dump()

    def remember(conn: Any, job_id: str) -> None:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(api=stored))

    job = submit_job(svc, key.id, job_input, pending, webhook=hook, on_created=remember)
    return job, asked


async def face_reference(
    version: Version, raw: Any, request: Request, key: ApiKey, svc: Services
) -> PendingReference:
    """fofr/face-to-sticker's ``image``, read and checked (InvalidInput naming
    ``input.<field>``: 422 here), with its IP-Adapter weight and noise."""
    inputs = face_to_sticker.parse(raw)
    fields = ReferenceFields(
        image=inputs.image,
        ip_adapter_weight=inputs.ip_adapter_weight,
        ip_adapter_noise=inputs.ip_adapter_noise,
    )
    pending = await read_reference(fields, version.preset, request, key, svc, prefix="input.")
    assert pending is not None  # image is required
    return pending


def _webhook(body: PredictionBody, root: str, svc: Services) -> str | None:
    allow = svc.settings.webhook_allow_networks
    if body.webhook is not None:
        return webhooks.replicate_config(body.webhook, body.webhook_events_filter, root, allow)
    if body.webhook_completed is not None:
        try:
            return webhooks.replicate_config(body.webhook_completed, ["completed"], root, allow)
        except InvalidInput as exc:
            raise InvalidInput(exc.errors[0].message, "webhook_completed") from None
    return None


# -- read, list, cancel -----------------------------------------------------------------


def _asked(job: Job) -> Asked:
    asked = Asked.load(job.api)
    if asked is None:  # a native or Segmind job: not a prediction
        raise NotFound(f"prediction {job.id} not found")
    return asked


def _render(request: Request, svc: Services, job: Job) -> dict[str, Any]:
    return prediction(
        job, _asked(job), base_url(request, svc), retention=svc.settings.retention_seconds
    )


def _not_found(prediction_id: str) -> NotFound:
    return NotFound(f"prediction {prediction_id[:64]} not found")


async def _job(svc: Services, prediction_id: str, key: ApiKey) -> Job:
    try:
        return await read(svc, svc.jobs.get, prediction_id, key.id)
    except NotFound:
        raise _not_found(prediction_id) from None


@router.get(
    "/v1/predictions/{prediction_id}", summary="Get a prediction", **doc(schemas.Prediction)
)
async def get_prediction(
    prediction_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> JSONResponse:
    job = await _job(svc, prediction_id, key)
    return JSONResponse(_render(request, svc, job))


@router.post(
    "/v1/predictions/{prediction_id}/cancel",
    summary="Cancel a prediction",
    **doc(schemas.Prediction),
)
def cancel_prediction(
    prediction_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    try:
        job = svc.jobs.get(prediction_id, key.id)
    except NotFound:
        raise _not_found(prediction_id) from None
    _asked(job)
    return _render(request, svc, svc.jobs.request_cancel(job.id, key.id))


@router.get(
    "/v1/predictions",
    summary="List your predictions (newest first)",
    **doc(schemas.PredictionPage),
)
def list_predictions(
    request: Request,
    cursor: str | None = Query(None, max_length=100, description="from a page's `next`"),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    query = select(jobs).where(jobs.c.key_id == key.id, jobs.c.api.is_not(None))
    if cursor:
        created, _, after_id = cursor.partition("_")
        try:
            before = float(created)
        except ValueError:
            raise InvalidInput("is not a cursor from this API", "cursor") from None
        query = query.where(
            or_(
                jobs.c.created_at < before,
                and_(jobs.c.created_at == before, jobs.c.id < after_id),
            )
        )
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(PAGE + 1)
    with svc.db.read() as conn:
        rows = conn.execute(query).mappings().all()
    page = [Job.from_row(r) for r in rows[:PAGE]]
    next_url = None
    if len(rows) > PAGE:
        last = page[-1]
        next_url = f"{base_url(request, svc)}/v1/predictions?cursor={last.created_at!r}_{last.id}"
    return {
        "results": [_render(request, svc, job) for job in page],
        "next": next_url,
        "previous": None,
    }


# -- stream ---------------------------------------------------------------------------


@router.get(
    "/v1/predictions/{prediction_id}/stream",
    summary="A prediction's logs and output as server-sent events",
    response_class=StreamingResponse,
    **doc(content=EVENT_STREAM),
)
async def stream_prediction(
    prediction_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> StreamingResponse:
    """``logs`` (each new line), ``output`` (each output URL), ``error``, then ``done``
    (``{}``, or ``{"reason": "canceled"}``)."""
    waiter: JobWaiter = request.app.state.waiter
    try:
        first, snapshots = await first_and_rest(
            watch(waiter, prediction_id, key.id, request.is_disconnected)
        )
    except NotFound:
        raise _not_found(prediction_id) from None
    asked = _asked(first)
    events = _replicate_events(snapshots, asked, base_url(request, svc))
    return StreamingResponse(events, media_type="text/event-stream", headers=HEADERS)


async def _replicate_events(
    snapshots: AsyncIterator[Job], asked: Asked, root: str
) -> AsyncIterator[bytes]:
    n, logged = 0, 0
    async for job in snapshots:
        for line in job.logs[logged:].splitlines():
            n += 1
            yield sse("logs", line, n)
        logged = len(job.logs)
        if not job.status.is_terminal:
            continue
        if job.status is JobStatus.SUCCEEDED:
            for url in output_urls(asked.kind, job, root):
                n += 1
                yield sse("output", url, n)
        elif job.status is JobStatus.FAILED:
            n += 1
            yield sse("error", json.dumps({"detail": job.error or "the prediction failed"}), n)
        done = {"reason": "canceled"} if job.status is JobStatus.CANCELED else {}
        yield sse("done", json.dumps(done), n + 1)


# -- models and versions ----------------------------------------------------------------


def _version_body(version: Version, svc: Services) -> dict[str, Any]:
    preset = svc.presets.get(version.preset)
    return {
        "id": version.id,
        "created_at": version.created_at,
        "cog_version": COG_VERSION,
        "openapi_schema": version.openapi_schema(preset),
    }


def _model_body(name: str, request: Request, svc: Services) -> dict[str, Any]:
    canonical, preset, versions = catalogue(svc).model(*name.split("/", 1))
    owner, short = canonical.split("/", 1)
    return {
        "url": f"{base_url(request, svc)}/v1/models/{canonical}",
        "owner": owner,
        "name": short,
        "description": f"Stickers from a prompt (preset {preset.name}: {preset.base})",
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 0,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": _version_body(versions[0], svc),
    }


@router.get("/v1/models", summary="Every model here (each preset)", **doc(schemas.ModelPage))
def list_models(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    names = sorted({v[1][0].model for v in catalogue(svc).models.values()})
    return {
        "results": [_model_body(name, request, svc) for name in names],
        "next": None,
        "previous": None,
    }


@router.get(
    "/v1/models/{owner}/{name}", summary="A model and its latest version", **doc(schemas.Model)
)
def get_model(
    owner: str, name: str, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    return _model_body(f"{owner}/{name}", request, svc)


@router.get(
    "/v1/models/{owner}/{name}/versions",
    summary="A model's versions, newest first",
    **doc(schemas.VersionPage),
)
def list_versions(owner: str, name: str, svc: Services = Depends(services)) -> dict[str, Any]:
    _, _, versions = catalogue(svc).model(owner, name)
    return {
        "results": [_version_body(v, svc) for v in versions],
        "next": None,
        "previous": None,
    }


@router.get(
    "/v1/models/{owner}/{name}/versions/{version_id}",
    summary="One version",
    **doc(schemas.Version),
)
def get_version(
    owner: str, name: str, version_id: str, svc: Services = Depends(services)
) -> dict[str, Any]:
    canonical, _, _ = catalogue(svc).model(owner, name)
    return _version_body(catalogue(svc).version(version_id, canonical), svc)


# -- webhooks ---------------------------------------------------------------------------


@router.get(
    "/v1/webhooks/default/secret",
    summary="The secret webhooks are signed with",
    **doc(schemas.WebhookSecret),
)
def webhook_secret(key: ApiKey = Depends(current_key)) -> dict[str, str | None]:
    """Your key's ``whsec_…``; check deliveries with ``replicate.webhooks.validate``."""
    return {"key": key.webhook_secret}
