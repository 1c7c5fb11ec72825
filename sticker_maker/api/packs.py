"""Packs: one request, one character, one sticker per expression (README, "Packs").

* ``POST /v1/packs`` ``{character, expressions: [...] | count: N, image?, preset, …}``
  queues one job of kind ``pack``: a :class:`JobInput` whose ``expressions`` hold each
  sticker's name, emoji and prompt words (``samples`` = their number). It is polled,
  cancelled, billed (its upper estimate reserved, its GPU time settled) and retained
  like any job; its ``output`` tags each sticker with its ``expression`` and ``emoji``.
* ``GET /v1/packs/{id}/export/whatsapp`` and ``…/export/telegram``: the whole pack in
  one download (a WhatsApp pack zip with its tray icon and emojis; a Telegram-ready zip
  of 512 px stickers with the emojis listed). Stickers are taken by their ``index`` (a
  pack's expression position), never by their place in the output array.
* ``GET /v1/expressions``: the built-in expressions ``count`` draws from.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from sticker_maker import expressions as builtin
from sticker_maker.accounts import ApiKey
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import BINARY, doc
from sticker_maker.api.native import PREFER, prefer_wait, waited
from sticker_maker.api.references import (
    PendingReference,
    ReferenceFields,
    guidance,
    read_reference,
    submit,
)
from sticker_maker.api.render import native_job
from sticker_maker.api.services import Services, services
from sticker_maker.errors import Conflict, FieldError, InvalidInput
from sticker_maker.inputs import Finishing
from sticker_maker.jobs import Job, JobStatus
from sticker_maker.params import (
    MAX_PROMPT,
    MAX_SEED,
    Expression,
    GenerationRequest,
    OutputFormat,
    Side,
    resolve,
    validation_errors,
)

router = APIRouter(tags=["packs"])

#: stickers in a pack when neither ``expressions`` nor ``count`` is given
DEFAULT_COUNT = 8
#: longest custom expression, in characters
MAX_EXPRESSION = 60
#: targets of ``GET /v1/packs/{id}/export/{target}``
PACK_TARGETS = ("whatsapp", "telegram")


class ExpressionSpec(BaseModel):
    """A custom expression given as an object (a plain string is its ``name``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_EXPRESSION)
    emoji: str | None = Field(default=None, min_length=1, max_length=16)
    prompt: str | None = Field(default=None, min_length=1, max_length=200)


class PackRequest(ReferenceFields):
    """A pack of stickers of one character, one per expression."""

    model_config = ConfigDict(extra="forbid")

    character: str = Field(
        min_length=1,
        max_length=MAX_PROMPT,
        description="who or what every sticker shows, e.g. 'a corgi wearing a red scarf'",
    )
    expressions: list[Any] | None = Field(
        default=None,
        description=f"1 to {builtin.MAX_PACK} expressions: text ('happy', 'eating pizza') "
        "or {name, emoji, prompt}; text that names a built-in one gets its emoji",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=builtin.MAX_PACK,
        description=f"instead of expressions: the first N built-in ones (default "
        f"{DEFAULT_COUNT}; GET /v1/expressions)",
    )
    preset: str = Field(default="sticker-maker", max_length=200)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT)
    width: Side | None = None
    height: Side | None = None
    steps: int | None = Field(default=None, ge=1, le=100)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    seed: int | None = Field(
        default=None,
        ge=-1,
        le=MAX_SEED,
        description="one seed for every sticker (one character); -1 or none: random",
    )
    finishing: Finishing | None = None
    output_format: OutputFormat = "png"
    output_quality: int = Field(default=90, ge=0, le=100)


# -- typed answers (OpenAPI) -------------------------------------------------------------


class ExpressionList(BaseModel):
    expressions: list[Expression]
    max_pack: int = Field(description="the most stickers a pack holds")
    default_count: int


# -- routes -------------------------------------------------------------------------------


@router.get("/v1/expressions", summary="The built-in expressions of packs", **doc(ExpressionList))
def list_expressions() -> ExpressionList:
    """What ``count: N`` draws from (the first N), each with its emoji and prompt words."""
    return ExpressionList(
        expressions=list(builtin.BUILT_IN), max_pack=builtin.MAX_PACK, default_count=DEFAULT_COUNT
    )


@router.post(
    "/v1/packs",
    status_code=201,
    summary="Make a pack: one character, many expressions",
    **doc(schemas.Job, 406, 422, status=201),
)
async def create_pack(
    body: PackRequest,
    request: Request,
    response: Response,
    prefer: str | None = PREFER,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Queue one ``pack`` job: a sticker of ``character`` per expression, all of one seed,
    denoised together; with ``image``, stickers of that picture's subject. Poll ``GET
    /v1/jobs/{id}``; then export it with ``GET /v1/packs/{id}/export/{whatsapp|telegram}``.
    Costs credits like any job (reserved on submit, settled to the GPU time). ``Prefer:
    wait=N`` answers with the finished pack when it takes ≤ N s, as ``POST /v1/jobs``."""
    wait = prefer_wait(prefer)
    chosen = pack_expressions(body.expressions, body.count)
    generation = _generation(body)
    pending = await read_reference(body, body.preset, request, key, svc)
    job = await run_in_threadpool(_submit, svc, key, generation, chosen, pending)
    if wait:
        job = await waited(request, response, key, job.id, wait)
    position = await run_in_threadpool(svc.jobs.queue_position, job)
    return native_job(request, svc, job, position=position)


def pack_expressions(given: list[Any] | None, count: int | None) -> tuple[Expression, ...]:
    """The pack's expressions from ``expressions`` or ``count``; InvalidInput naming
    ``expressions``, ``expressions[i]`` or ``count``."""
    if given is not None and count is not None:
        raise InvalidInput("give expressions or count, not both", "count")
    if given is None:
        return builtin.first(count or DEFAULT_COUNT)
    if not 1 <= len(given) <= builtin.MAX_PACK:
        raise InvalidInput(
            f"a pack holds 1 to {builtin.MAX_PACK} stickers (WhatsApp's most), got {len(given)}",
            "expressions",
        )
    chosen = []
    for i, item in enumerate(given):
        field = f"expressions[{i}]"
        if isinstance(item, str):
            if not item.strip():
                raise InvalidInput("must not be empty: name an expression, e.g. 'happy'", field)
            if len(item) > MAX_EXPRESSION or "\x00" in item:
                raise InvalidInput(f"must be 1 to {MAX_EXPRESSION} characters of text", field)
            chosen.append(builtin.custom(item))
            continue
        try:
            spec = ExpressionSpec.model_validate(item)
        except ValidationError as exc:
            raise InvalidInput(validation_errors(exc.errors(), f"{field}.")) from None
        if not spec.name.strip():
            raise InvalidInput("must not be empty: name an expression, e.g. 'happy'", field)
        base = builtin.custom(spec.name)
        chosen.append(
            Expression(
                name=base.name,
                emoji=spec.emoji or base.emoji,
                prompt=spec.prompt or base.prompt,
            )
        )
    return tuple(chosen)


def _generation(body: PackRequest) -> GenerationRequest:
    """The generation of each sticker; errors name the pack's fields (``character``)."""
    data = {
        "preset": body.preset,
        "prompt": body.character,
        "negative_prompt": body.negative_prompt,
        "width": body.width,
        "height": body.height,
        "steps": body.steps,
        "guidance_scale": guidance(body.prompt_strength, body.guidance_scale),
        "seed": body.seed,
        "finishing": body.finishing,
        "output_format": body.output_format,
        "output_quality": body.output_quality,
    }
    try:
        return GenerationRequest.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        raise InvalidInput(
            [FieldError("character" if e.field == "prompt" else e.field, e.message) for e in errors]
        ) from None


def _submit(
    svc: Services,
    key: ApiKey,
    generation: GenerationRequest,
    chosen: tuple[Expression, ...],
    pending: PendingReference | None,
) -> Job:
    job_input = resolve(generation, svc.presets).model_copy(
        update={"samples": len(chosen), "expressions": chosen}
    )
    return submit(svc, key.id, job_input, pending, kind="pack")


# -- exports -------------------------------------------------------------------------------


def pack_stickers(svc: Services, job: Job) -> list[tuple[Any, str, str]]:
    """(image, emoji, expression) of each sticker of a succeeded job, by ``index``."""
    from PIL import Image

    from sticker_maker.api.finishing import _sticker_image

    if job.status is not JobStatus.SUCCEEDED:
        raise Conflict(
            f"job {job.id} is {job.status.value}; a pack exports once it has succeeded "
            "(poll it until its status is succeeded)"
        )
    stickers = sorted((o for o in job.output if o.kind == "sticker"), key=lambda o: o.index)
    if not stickers:
        raise Conflict(f"job {job.id} has no sticker outputs to export")
    found = []
    for output in stickers:
        image: Image.Image = _sticker_image(svc, job, output.index)
        emoji = output.emoji or builtin.DEFAULT_EMOJI
        found.append((image, emoji, output.expression or f"sticker {output.index + 1}"))
    return found


def _name(job: Job) -> str:
    prompt = getattr(job.input, "prompt", "") or "Stickers"
    return prompt[:128].strip() or "Stickers"


@router.get(
    "/v1/packs/{job_id}/export/{target}",
    summary="Download a whole pack for WhatsApp or Telegram",
    response_class=Response,
    **doc(None, 409, content={"application/zip": BINARY}, description="the pack as a zip"),
)
def export_pack(
    job_id: str,
    target: str = Path(description="the app", json_schema_extra={"enum": [*PACK_TARGETS]}),
    name: str | None = Query(
        None, min_length=1, max_length=128, description="the pack's name (default: character)"
    ),
    publisher: str = Query("sticker-maker", min_length=1, max_length=128),
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> Response:
    """``whatsapp``: ``contents.json``, ``tray.png`` (96x96, from the first sticker) and
    ``01.webp`` … (512x512, ≤ 100 KB), each sticker tagged with its emoji (3 to 30
    stickers). ``telegram``: ``01.png`` … (one side 512 px, ≤ 512 KB; WebP when a PNG
    would not fit), ``emojis.txt`` (file, emoji, expression a line) and ``pack.json``.
    Works for any succeeded job with stickers; a pack's carry their emojis."""
    from sticker_maker.finishing import FinishingError, whatsapp_pack
    from sticker_maker.finishing._packs import telegram_pack

    if target not in PACK_TARGETS:
        raise InvalidInput(
            f"{target[:40]!r} is not a pack export; allowed: {', '.join(PACK_TARGETS)}", "target"
        )
    job = svc.jobs.get(job_id, key.id)
    stickers = pack_stickers(svc, job)
    title = name if name is not None else _name(job)
    images = [s[0] for s in stickers]
    try:
        if target == "whatsapp":
            data = whatsapp_pack(
                images, name=title, publisher=publisher, emojis=[[s[1]] for s in stickers]
            )
        else:
            data = telegram_pack(
                images, name=title, emojis=[s[1] for s in stickers], names=[s[2] for s in stickers]
            )
    except FinishingError as exc:
        raise InvalidInput(f"{exc}", "target" if "stickers" in str(exc) else "name") from None
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_")[:64] or "stickers"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{slug}-{target}.zip"',
            "Cache-Control": "private, max-age=3600",
        },
    )
