"""Finishing routes of the native API: upload jobs, exports, WhatsApp packs.

* ``POST /v1/cutouts`` and ``POST /v1/splits`` take an image upload (multipart) and
  queue a ``cutout`` / ``split`` job, run by the worker like any job (queue, progress,
  cancel, logs); the upload is stored beside the job's outputs.
* ``GET /v1/jobs/{id}/outputs/{n}/export/{target}`` encodes sticker ``n`` (its
  ``index``) for an app or for print, on request, from the stored sticker PNG (byte
  limits met by construction in :mod:`sticker_maker.finishing`).
* ``POST /v1/exports/whatsapp-pack`` zips 3 to 30 sticker outputs as a WhatsApp pack.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey, lifecycle
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import BINARY, doc, form_doc
from sticker_maker.api.image_inputs import image_input
from sticker_maker.api.native import PREFER, prefer_wait, waited
from sticker_maker.api.render import base_url, native_job
from sticker_maker.api.services import Services, services
from sticker_maker.api.uploads import Upload, check_image, read_form
from sticker_maker.bounds import MAX_IMAGE_SIDE, MAX_UPLOAD_BYTES
from sticker_maker.errors import Conflict, InvalidInput, NotFound
from sticker_maker.inputs import (
    MAX_BORDER,
    CutoutInput,
    Holes,
    Remover,
    SplitInput,
    UploadInput,
    resolve_remover,
)
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.params import validation_errors
from sticker_maker.storage import new_file_name

router = APIRouter(tags=["finishing"])

#: the preset whose remover (and price) upload jobs use unless the form names one
DEFAULT_PRESET = "sticker-maker"
#: routes that read (and bound) their own request body: exempt from ``max_request_bytes``
UPLOAD_PATHS = ("/v1/cutouts", "/v1/splits")
#: export targets (the finishing stage's, the CLI's ``--export`` names) → content type,
#: None to sniff (telegram: PNG, or WebP when a PNG would not fit)
EXPORTS: dict[str, str | None] = {
    "png": "image/png",
    "webp": "image/webp",
    "telegram": None,
    "whatsapp": "image/webp",
    "whatsapp_tray": "image/png",
    "discord": "image/png",
    "print_png": "image/png",
    "print_svg": "image/svg+xml",
}
_SNIFFED = {"png": "image/png", "webp": "image/webp", "svg": "image/svg+xml"}


# -- upload jobs ---------------------------------------------------------------------


class SplitOptions(BaseModel):
    """The form fields of ``POST /v1/splits`` besides ``image``."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field(default=DEFAULT_PRESET, max_length=200)
    remover: Remover | None = None
    border: int | None = Field(default=None, ge=0, le=MAX_BORDER)
    shadow: bool = False


class CutoutOptions(SplitOptions):
    """The form fields of ``POST /v1/cutouts`` besides ``image``."""

    trim: bool = True
    holes: Holes = "auto"


_FIELD_DOCS: dict[str, dict[str, Any]] = {
    "image": {
        "type": "string",
        "format": "binary",
        "description": f"PNG, JPEG or WebP, at most {MAX_UPLOAD_BYTES // 2**20} MiB and "
        f"{MAX_IMAGE_SIDE} px a side; or, as text, a URL: a /v1/files upload or output "
        "of yours, a data: URL, or a public http(s) URL",
    },
    "remover": {
        "type": "string",
        "enum": ["auto", "model", "none"],
        "description": "background removal; default: the preset's",
    },
    "border": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_BORDER,
        "description": "white die-cut border in px; empty: in proportion to the size; 0: none",
    },
    "shadow": {"type": "boolean", "default": False, "description": "soft drop shadow"},
    "trim": {
        "type": "boolean",
        "default": True,
        "description": "trim to the content with an even margin (false: keep the canvas)",
    },
    "holes": {
        "type": "string",
        "enum": ["auto", "keep", "cut"],
        "default": "auto",
        "description": "enclosed backdrop (a wheel, a ring): auto cuts what is backdrop and "
        "keeps backdrop-coloured art; keep fills every hole; cut removes every one",
    },
    "preset": {
        "type": "string",
        "default": DEFAULT_PRESET,
        "description": "preset whose background remover and price apply",
    },
}


def _form_doc(*names: str) -> dict[str, Any]:
    """OpenAPI request body of a multipart route (the route reads the form itself)."""
    return form_doc({n: _FIELD_DOCS[n] for n in ("image", *names)})


async def _read_upload(
    request: Request, options_model: type[SplitOptions], key: ApiKey, svc: Services
) -> tuple[Upload, Any]:
    """The checked upload and its options, or InvalidInput naming the field. ``image``
    may be a file or, as text, a URL (``api.image_inputs``: an upload or output of yours,
    a ``data:`` URL, or a public URL fetched through the webhook guard)."""
    image, fields, form = await read_form(request, text_ok=True)
    try:
        try:
            options = options_model.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(validation_errors(exc.errors())) from None
        data = None if isinstance(image, str) else await image.read(MAX_UPLOAD_BYTES + 1)
    finally:
        await form.close()
    if isinstance(image, str):
        upload = await image_input(image, "image", key, svc, base_url(request, svc))
    else:
        upload = await run_in_threadpool(check_image, data)
    return upload, options


def _submit(
    svc: Services, key: ApiKey, kind: str, upload: Upload, make: Callable[[str], UploadInput]
) -> Job:
    """Store the upload, then queue the job owning it (retention deletes it with the job's
    outputs); no stored file is left if the submit fails (limits, credits)."""
    name = new_file_name(upload.extension)
    svc.storage.put(name, upload.data)

    def own(conn: Any, job_id: str) -> None:
        lifecycle.record_file(conn, name, key.id, job_id)

    try:
        return svc.jobs.submit(key.id, make(name), kind=kind, on_created=own)
    except BaseException:
        with contextlib.suppress(Exception):
            svc.storage.delete(name)
        raise


def _envelope(request: Request, svc: Services, job: Job) -> dict[str, Any]:
    position = svc.jobs.queue_position(job) if job.status is JobStatus.QUEUED else None
    return native_job(request, svc, job, position=position)


def _upload_fields(upload: Upload, options: SplitOptions, svc: Services) -> dict[str, Any]:
    preset = svc.presets.get(options.preset, "preset")
    return {
        "preset": preset.name,
        "width": upload.width,
        "height": upload.height,
        "content_type": upload.content_type,
        "remover": resolve_remover(preset, options.remover, "remover"),
        "border": options.border,
        "shadow": options.shadow,
    }


@router.post(
    "/v1/cutouts",
    status_code=201,
    summary="Cut out an uploaded image (a cutout job)",
    openapi_extra=_form_doc("remover", "border", "shadow", "trim", "holes", "preset"),
    **doc(schemas.Job, 406, 413, status=201),
)
async def create_cutout(
    request: Request,
    response: Response,
    prefer: str | None = PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Queue a ``cutout`` job: multipart form with the ``image`` file and optional
    ``remover``, ``border``, ``shadow``, ``trim``, ``holes``, ``preset``. Its output is one
    ``sticker`` (RGBA PNG). Poll ``GET /v1/jobs/{id}`` like any job, or send
    ``Prefer: wait=N`` to get the finished job in this response."""
    wait = prefer_wait(prefer)
    upload, options = await _read_upload(request, CutoutOptions, key, svc)
    fields = {**_upload_fields(upload, options, svc), "trim": options.trim, "holes": options.holes}
    job = await run_in_threadpool(
        _submit, svc, key, "cutout", upload, lambda name: CutoutInput(image=name, **fields)
    )
    if wait:
        job = await waited(request, response, key, job.id, wait)
    return await run_in_threadpool(_envelope, request, svc, job)


@router.post(
    "/v1/splits",
    status_code=201,
    summary="Split an uploaded sticker sheet (a split job)",
    openapi_extra=_form_doc("remover", "border", "shadow", "preset"),
    **doc(schemas.Job, 406, 413, status=201),
)
async def create_split(
    request: Request,
    response: Response,
    prefer: str | None = PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Queue a ``split`` job: multipart form with the sheet as ``image`` and optional
    ``border`` (default: in proportion, none when the art already has a white rim),
    ``shadow``, ``remover``, ``preset``. Output: one ``sticker`` per piece, in reading
    order (``index`` 0..n-1). ``Prefer: wait=N`` as for cut-outs."""
    wait = prefer_wait(prefer)
    upload, options = await _read_upload(request, SplitOptions, key, svc)
    fields = _upload_fields(upload, options, svc)
    job = await run_in_threadpool(
        _submit, svc, key, "split", upload, lambda name: SplitInput(image=name, **fields)
    )
    if wait:
        job = await waited(request, response, key, job.id, wait)
    return await run_in_threadpool(_envelope, request, svc, job)


# -- exports ---------------------------------------------------------------------------


def _sticker_image(svc: Services, job: Job, n: int, field: str = "n") -> Any:
    """The PIL image of sticker ``n`` of a succeeded job: the ``sticker`` output whose
    ``index`` is ``n`` (the sample number; for a split, the piece number), the same
    number the job's ``output`` shows, whatever the outputs' order."""
    from PIL import Image

    if job.status is not JobStatus.SUCCEEDED:
        raise Conflict(
            f"job {job.id} is {job.status.value}; exports need a succeeded job "
            "(poll it until its status is succeeded)"
        )
    stickers = {o.index: o for o in job.output if o.kind == "sticker"}
    if n not in stickers:
        have = ", ".join(str(i) for i in sorted(stickers)) or "none"
        raise NotFound(
            f"{field}: job {job.id} has no sticker with index {n}; its stickers' "
            f"indexes (output[].index) are: {have}"
        )
    output = stickers[n]
    if output.empty:
        raise Conflict(
            f"sticker {n} of job {job.id} is empty: the cut-out found nothing on the "
            "backdrop, so there is nothing to export (its opaque image is still there)"
        )
    try:
        data = svc.storage.get(output.file)
    except FileNotFoundError:
        raise NotFound(
            f"sticker {n} of job {job.id} is gone (outputs are kept for a limited time)"
        ) from None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _attachment(name: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, max-age=3600",
    }


@router.get(
    "/v1/jobs/{job_id}/outputs/{n}/export/{target}",
    summary="Download a sticker output for an app or for print",
    response_class=Response,
    **doc(None, 409, content={t: BINARY for t in ("image/png", "image/webp", "image/svg+xml")}),
)
def export_output(
    job_id: str,
    n: str = Path(
        description="the output's position in the job's `output` array",
        json_schema_extra={"pattern": "^[0-9]{1,6}$"},
    ),
    target: str = Path(description="what to export for", json_schema_extra={"enum": [*EXPORTS]}),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """``n`` is the sticker's ``index`` as the job's ``output`` shows it (the sample
    number; for a split, the piece number), not its position in the output array.
    ``target``: ``png``, ``webp`` (original size, lossless); ``telegram`` (one side
    512 px, ≤ 512 KB); ``whatsapp`` (512x512 WebP ≤ 100 KB); ``whatsapp_tray`` (96x96
    PNG ≤ 50 KB); ``discord`` (320x320 PNG ≤ 512 KB); ``print_png`` (300 dpi PNG);
    ``print_svg`` (the SVG cut line matching ``print_png``)."""
    from sticker_maker.finishing import FinishingError, export
    from sticker_maker.finishing._export import sniff_extension

    if target not in EXPORTS:
        raise InvalidInput(
            f"{target[:40]!r} is not an export target; allowed: {', '.join(EXPORTS)}", "target"
        )
    if not (n.isascii() and n.isdigit()) or len(n) > 6:
        raise InvalidInput(f"{n[:20]!r} is not an output index (0, 1, ...)", "n")
    job = svc.jobs.get(job_id, key.id)
    image = _sticker_image(svc, job, int(n))
    try:
        data = export(image, target)
    except FinishingError as exc:  # an empty sticker has no cut line: say so, never 5xx
        why = f"sticker {n} of job {job.id} cannot be exported as {target}: {exc}"
        raise Conflict(why) from None
    ext = sniff_extension(data)
    media_type = EXPORTS[target] or _SNIFFED[ext]
    filename = f"sticker-{job.id[:8]}-{n}-{target}.{ext}"
    return Response(data, media_type=media_type, headers=_attachment(filename))


class PackSticker(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1, max_length=64)
    output: int = Field(
        ge=0,
        le=999,
        description="the sticker's `index` in its job (as the job's output shows it)",
    )


def _pack_size() -> dict[str, int]:
    """The pack's bounds, for its OpenAPI schema (read when the schema is built)."""
    from sticker_maker.finishing._export import WHATSAPP_MAX_STICKERS, WHATSAPP_MIN_STICKERS

    return {"minItems": WHATSAPP_MIN_STICKERS, "maxItems": WHATSAPP_MAX_STICKERS}


class WhatsAppPackRequest(BaseModel):
    """A WhatsApp sticker pack from 3 to 30 sticker outputs of your jobs."""

    model_config = ConfigDict(extra="forbid")

    stickers: list[PackSticker] = Field(
        description="3 to 30 stickers: the job and the sticker's `index` (as in the job's "
        "output: the sample number; for a split, the piece number)",
        json_schema_extra=lambda schema: schema.update(_pack_size()),
    )
    name: str = Field(min_length=1, max_length=128, description="the pack's name")
    publisher: str = Field(min_length=1, max_length=128, description="who made it")

    @field_validator("stickers", mode="before")
    @classmethod
    def _three_to_thirty(cls, value: Any) -> Any:
        from sticker_maker.finishing._export import WHATSAPP_MAX_STICKERS, WHATSAPP_MIN_STICKERS

        if isinstance(value, list) and not (
            WHATSAPP_MIN_STICKERS <= len(value) <= WHATSAPP_MAX_STICKERS
        ):
            raise ValueError(
                f"a WhatsApp pack needs {WHATSAPP_MIN_STICKERS} to {WHATSAPP_MAX_STICKERS} "
                f"stickers, got {len(value)}"
            )
        return value


@router.post(
    "/v1/exports/whatsapp-pack",
    summary="Zip sticker outputs as a WhatsApp sticker pack",
    response_class=Response,
    **doc(None, 404, 409, content={"application/zip": BINARY}),
)
def whatsapp_pack_export(
    body: WhatsAppPackRequest,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """The pack as a zip: ``contents.json``, ``tray.png`` (96x96, from the first sticker)
    and ``01.webp`` … (512x512, ≤ 100 KB each)."""
    from sticker_maker.finishing import FinishingError, whatsapp_pack

    images = []
    for i, item in enumerate(body.stickers):
        try:
            job = svc.jobs.get(item.job_id, key.id)
        except NotFound:
            raise NotFound(f"stickers.{i}: job {item.job_id[:64]!r} not found") from None
        images.append(_sticker_image(svc, job, item.output, f"stickers.{i}.output"))
    try:
        data = whatsapp_pack(images, name=body.name, publisher=body.publisher)
    except FinishingError as exc:
        field = str(exc).split("=", 1)[0].split(":", 1)[0]
        raise InvalidInput(str(exc), field if field in ("name", "publisher") else "body") from None
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", body.name).strip("_")[:64] or "stickers"
    return Response(data, media_type="application/zip", headers=_attachment(f"{slug}.zip"))
