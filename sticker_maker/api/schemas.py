"""What the routes answer, as pydantic models: the OpenAPI description's response bodies.

The routes build their bodies as plain dicts (the wire formats predate these models and
the hot routes skip a validation pass), so the models only document: ``api.contract``
attaches them to the routes, and the fuzzer (``tests/api/test_contract_fuzz.py``) checks
every answer against them. A field added to a body belongs here too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sticker_maker.inputs import CutoutInput, SplitInput
from sticker_maker.params import MAX_PROMPT, MAX_SEED, MAX_SIDE, MIN_SIDE, JobInput

Timestamp = str | None  # ISO-8601 UTC with milliseconds and Z, or null

# -- native -------------------------------------------------------------------------------


class JobOutput(BaseModel):
    kind: str = Field(description="`image` (opaque, as generated) or `sticker` (transparent)")
    index: int = Field(description="the image number (a split: the piece number)")
    seed: int
    width: int
    height: int
    content_type: str
    url: str
    expression: str | None = Field(None, description="a pack's sticker: its expression")
    emoji: str | None = Field(None, description="a pack's sticker: its emoji")
    empty: bool | None = Field(
        None, description="a sticker whose cut-out found nothing (README, Empty stickers)"
    )


class Progress(BaseModel):
    step: int
    total: int


class JobMetrics(BaseModel):
    queue_time: float | None
    predict_time: float | None
    total_time: float | None


class JobUrls(BaseModel):
    get: str
    cancel: str


class Job(BaseModel):
    """The one job envelope of the native API (also a webhook's ``data``)."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    kind: str = Field(description="`generate`, `cutout`, `split`, …")
    preset: str | None
    input: JobInput | CutoutInput | SplitInput = Field(
        description="the job's input, defaults filled in (an upload's `image`: its URL)"
    )
    output: list[JobOutput]
    error: str | None
    error_code: str | None
    error_stage: str | None
    logs: str
    progress: Progress
    metrics: JobMetrics
    created_at: Timestamp
    started_at: Timestamp
    completed_at: Timestamp
    urls: JobUrls
    queue_position: int | None = Field(None, description="jobs ahead of it, while queued")


class JobList(BaseModel):
    jobs: list[Job]


class PresetInfo(BaseModel):
    name: str
    aliases: list[str]
    base: str
    lora: str | None
    scheduler: str
    steps: int
    guidance_scale: float
    width: int
    height: int
    price_per_second: float
    upscale: bool = Field(description="whether the preset can upscale (`upscale: true`)")


class PresetList(BaseModel):
    presets: list[PresetInfo]


class Limits(BaseModel):
    requests_per_minute: int
    submits_per_minute: int
    max_active_jobs: int


class KeyInfo(BaseModel):
    id: str
    prefix: str
    label: str
    scope: Literal["user", "admin"]
    created_at: Timestamp
    last_used_at: Timestamp
    revoked_at: Timestamp
    safety: str | None


class LedgerRow(BaseModel):
    kind: str = Field(description="`grant`, `reserve`, `refund` or `settle`")
    amount: float
    job_id: str | None
    note: str | None
    created_at: Timestamp


class Account(BaseModel):
    """Your key, balance, holds, limits and usage (and what Replicate's client reads)."""

    key: KeyInfo
    balance: float
    reserved: float = Field(ge=0)
    active_jobs: int
    limits: Limits
    webhook_secret: str | None
    usage: list[LedgerRow]
    type: str
    username: str
    name: str
    github_url: str | None
    retention_seconds: float | None = Field(
        None, description="how long outputs and uploads are kept (null: kept until deleted)"
    )


class AdminKey(KeyInfo):
    balance: float
    limits: Limits


class AdminKeyList(BaseModel):
    keys: list[AdminKey]


class AdminKeyOne(BaseModel):
    key: AdminKey


class AdminKeySecret(AdminKeyOne):
    secret: str = Field(description="the whole key, shown this once")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    database: str
    storage: str
    disk: str


# -- sticker-maker compatible (/api/v1) -------------------------------------------------------


class SeedInput(BaseModel):
    """The hosted model's inputs (ranges: the native API's)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    negative_prompt: str = Field("", max_length=MAX_PROMPT)
    width: int = Field(1024, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    height: int = Field(1024, ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(20, ge=1, le=100)
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 draws a random seed")
    upscale: bool = False
    upscale_steps: int = Field(10, ge=1, le=50)


class SeedGenerate(BaseModel):
    mid: int | str = Field(description="the model: 3123, or a preset name or alias")
    input: SeedInput


class SeedTid(BaseModel):
    tid: str


class _SeedEnvelope(BaseModel):
    message: str
    code: Literal[20000]
    status_code: Literal["success"]


class SeedSubmitted(_SeedEnvelope):
    data: SeedTid


class SeedJob(BaseModel):
    tid: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    input: SeedInput
    output: list[str] = Field(description="[image_url, sticker_url] once succeeded")
    error: str | None
    created_at: Timestamp
    started_at: Timestamp
    completed_at: Timestamp
    predict_time: float | None
    total_time: float | None


class SeedResult(_SeedEnvelope):
    data: SeedJob


# -- Segmind compatible (/v1/<model>, /v2) --------------------------------------------------


class SegmindImages(BaseModel):
    """``base64: true``: the images as base64 instead of the first image's bytes."""

    status: Literal["Success"]
    request_id: str
    image: str
    images: list[str]
    stickers: list[str]
    seed: int
    infer_time: float | None


class SegmindQueued(BaseModel):
    request_id: str
    status: Literal["QUEUED"]
    status_url: str
    response_url: str
    poll_url: str


class SegmindMetrics(BaseModel):
    inference_time: float | None
    queue_time: float | None
    total_time: float | None


class SegmindStatus(BaseModel):
    request_id: str
    status: Literal["QUEUED", "PROCESSING", "COMPLETED"]
    metrics: SegmindMetrics
    progress: Progress
    queue_position: int | None = None


class SegmindResult(BaseModel):
    request_id: str
    status: Literal["QUEUED", "PROCESSING", "COMPLETED"]
    output: str | list[str] | None = Field(description="the image (a list when samples > 1)")
    metrics: SegmindMetrics
    stickers: list[str] | None = None
    seed: int | None = None
    cost: float | None = None


class SegmindFailed(BaseModel):
    """A failed (or canceled) request: HTTP 422."""

    request_id: str
    status: Literal["FAILED"]
    error: str


# -- Replicate compatible --------------------------------------------------------------------


class PredictionUrls(BaseModel):
    get: str
    cancel: str
    stream: str


class Prediction(BaseModel):
    id: str
    model: str
    version: str
    input: dict[str, Any]
    output: list[str] | str | None
    logs: str
    error: str | None
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    created_at: Timestamp
    started_at: Timestamp
    completed_at: Timestamp
    metrics: dict[str, float]
    data_removed: bool
    source: str
    urls: PredictionUrls


class _Page(BaseModel):
    next: str | None
    previous: str | None


class PredictionPage(_Page):
    results: list[Prediction]


class Version(BaseModel):
    id: str
    created_at: str
    cog_version: str
    openapi_schema: dict[str, Any] = Field(description="Cog's schema of the inputs and output")


class VersionPage(_Page):
    results: list[Version]


class Model(BaseModel):
    url: str
    owner: str
    name: str
    description: str
    visibility: str
    github_url: str | None
    paper_url: str | None
    license_url: str | None
    run_count: int
    cover_image_url: str | None
    default_example: dict[str, Any] | None
    latest_version: Version


class ModelPage(_Page):
    results: list[Model]


class FileUrls(BaseModel):
    get: str


class File(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    etag: str
    checksums: dict[str, str]
    metadata: dict[str, Any]
    created_at: Timestamp
    expires_at: Timestamp
    urls: FileUrls


class FilePage(_Page):
    results: list[File]


class WebhookSecret(BaseModel):
    key: str | None


# -- errors, one model per family ----------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="the field at fault (`body` for the body as a whole)")
    message: str


class NativeErrorDetail(BaseModel):
    code: str = Field(description="`invalid_input`, `authentication_error`, `not_found`, …")
    message: str
    fields: list[FieldProblem] | None = None
    retry_after: float | None = Field(None, description="seconds, on 429 and 503")
    stage: str | None = Field(None, description="content_blocked: `prompt` or `image`")


class NativeError(BaseModel):
    error: NativeErrorDetail


class SeedError(BaseModel):
    message: str = Field(description="names the field first: `input.width: …`")
    code: int = Field(description="the HTTP status")
    status_code: Literal["error"]


class SegmindError(BaseModel):
    error: str
    status: Literal["FAILED"] | None = None
    request_id: str | None = None


class Problem(BaseModel):
    """RFC 7807 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    invalid_fields: list[FieldProblem] | None = None
