"""Reference pictures ("stickers of you"): the ``image`` input of generation jobs and packs.

A job may name a picture whose subject the stickers are of (IP-Adapter; README,
"Stickers of you"). The API reads it once, at the edge, like every image input
(:func:`sticker_maker.api.image_inputs.image_input`: an upload ``/v1/files/{id}``, a
``data:`` URL, an output of yours, or a public URL fetched through the webhook guard,
which never connects to a private address), checks it like an upload (format, size,
every pixel), stores the clean PNG and puts its storage name in
``JobInput.reference``. The job owns the file: it is deleted with the job's outputs.

Every problem is an :class:`InvalidInput` naming the field (``image``,
``ip_adapter_weight``, …, or ``input.image`` on the Replicate routes), before anything
is stored or queued.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from sticker_maker.accounts import ApiKey, lifecycle
from sticker_maker.api.image_inputs import image_input
from sticker_maker.api.render import base_url
from sticker_maker.api.services import Services
from sticker_maker.api.uploads import Upload
from sticker_maker.errors import InvalidInput
from sticker_maker.jobs import Job
from sticker_maker.params import JobInput, Reference
from sticker_maker.presets import Preset
from sticker_maker.storage import new_file_name

#: IP-Adapter scale when a request gives an image but no ``ip_adapter_weight`` and the
#: preset names no default of its own (``Preset.ip_adapter_weight``)
DEFAULT_IP_ADAPTER_WEIGHT = 0.5
#: the longest image text accepted (a data: URL of an image that fits the JSON body cap)
MAX_IMAGE_TEXT = 12 * 1024 * 1024

IMAGE_DOC = (
    "a picture whose subject the stickers are of (a face, a pet, an object): the URL of "
    "a POST /v1/files upload or an output of yours, a data: URL (PNG, JPEG or WebP), or a "
    "public http(s) URL"
)


class ReferenceFields(BaseModel):
    """The reference inputs a generation request or a pack may carry."""

    image: str | None = Field(default=None, max_length=MAX_IMAGE_TEXT, description=IMAGE_DOC)
    ip_adapter_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="how much the picture steers the stickers (IP-Adapter scale); "
        "default: the preset's (needs image)",
    )
    ip_adapter_noise: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="noise mixed into the picture's embedding: looser likeness; default: "
        "the preset's (needs image)",
    )
    strength: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="img2img: start from the picture and change this much of it (1 = from "
        "noise); default: from noise (needs image)",
    )
    prompt_strength: float | None = Field(
        default=None,
        ge=0.0,
        le=30.0,
        description="how closely to follow the prompt (the CFG scale, as in "
        "fofr/face-to-sticker): another name for guidance_scale",
    )


def guidance(prompt_strength: float | None, guidance_scale: float | None) -> float | None:
    """The CFG scale asked for as ``guidance_scale`` or ``prompt_strength`` (both given:
    InvalidInput naming ``prompt_strength``)."""
    if prompt_strength is None:
        return guidance_scale
    if guidance_scale is not None:
        raise InvalidInput(
            "is another name for guidance_scale; give one of them, not both", "prompt_strength"
        )
    return prompt_strength


def reference_problem(preset: Preset) -> str | None:
    """Why ``preset`` cannot take a reference picture, or None when it can.

    The preset says (``Preset.reference_problem``, with its IP-Adapter); a preset without
    that method has no IP-Adapter.
    """
    method = getattr(preset, "reference_problem", None)
    if callable(method):
        return method()  # type: ignore[no-any-return]
    return (
        f"preset {preset.name!r} has no IP-Adapter, so it cannot make stickers of a "
        "picture; use a preset that has one (e.g. face-to-sticker)"
    )


@dataclass(frozen=True)
class PendingReference:
    """A checked reference picture, not yet stored."""

    upload: Upload
    #: the storage name it will have (chosen now, so a caller can show its URL)
    name: str
    ip_adapter_weight: float
    ip_adapter_noise: float
    strength: float | None


async def read_reference(
    fields: ReferenceFields,
    preset_name: str,
    request: Request,
    key: ApiKey,
    svc: Services,
    *,
    prefix: str = "",
) -> PendingReference | None:
    """The checked picture of ``fields.image`` (None without one), or InvalidInput.

    Cheap checks first (options without a picture, a preset that cannot take one), so a
    request that would be refused anyway never fetches anything.
    """
    if fields.image is None:
        for name in ("ip_adapter_weight", "ip_adapter_noise", "strength"):
            if getattr(fields, name) is not None:
                raise InvalidInput(
                    "applies only to stickers of a picture: give image too", f"{prefix}{name}"
                )
        return None
    preset = svc.presets.get(preset_name, f"{prefix}preset")
    if problem := reference_problem(preset):
        raise InvalidInput(problem, f"{prefix}image")
    upload = await image_input(fields.image, f"{prefix}image", key, svc, base_url(request, svc))
    weight, noise = preset_defaults(preset)
    return PendingReference(
        upload,
        new_file_name(upload.extension),
        weight if fields.ip_adapter_weight is None else fields.ip_adapter_weight,
        noise if fields.ip_adapter_noise is None else fields.ip_adapter_noise,
        fields.strength,
    )


def preset_defaults(preset: Preset) -> tuple[float, float]:
    """The preset's default IP-Adapter weight and noise (its own, else 0.5 and 0)."""
    weight = getattr(preset, "ip_adapter_weight", None)
    noise = getattr(preset, "ip_adapter_noise", None)
    return (
        DEFAULT_IP_ADAPTER_WEIGHT if weight is None else float(weight),
        0.0 if noise is None else float(noise),
    )


def submit(
    svc: Services,
    key_id: str,
    job_input: JobInput,
    pending: PendingReference | None,
    *,
    kind: str = "generate",
    webhook: str | None = None,
    on_created: Callable[[Connection, str], None] | None = None,
) -> Job:
    """Store the picture (when there is one), then queue the job owning it; no stored
    file is left when the submit fails (limits, credits, content policy)."""
    if pending is None:
        return svc.jobs.submit(key_id, job_input, kind=kind, webhook=webhook, on_created=on_created)
    name = pending.name
    reference = Reference(
        image=name,
        ip_adapter_weight=pending.ip_adapter_weight,
        ip_adapter_noise=pending.ip_adapter_noise,
        strength=pending.strength,
    )
    job_input = job_input.model_copy(update={"reference": reference})
    svc.storage.put(name, pending.upload.data)

    def own(conn: Connection, job_id: str) -> None:
        lifecycle.record_file(conn, name, key_id, job_id)
        if on_created is not None:
            on_created(conn, job_id)

    try:
        return svc.jobs.submit(key_id, job_input, kind=kind, webhook=webhook, on_created=own)
    except BaseException:
        with contextlib.suppress(Exception):
            svc.storage.delete(name)
        raise
