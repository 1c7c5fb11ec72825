"""Generation parameters: validated once at the edge, resolved against a preset.

Every API (native, sticker-maker-compatible, Segmind-compatible) and the CLI
turn their request into a :class:`GenerationRequest`; :func:`resolve` fills the
preset's defaults and draws the seed, giving the :class:`JobInput` that is
stored with the job and handed to the worker unchanged.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sticker_maker.errors import FieldError, InvalidInput
from sticker_maker.inputs import Finishing, resolve_remover
from sticker_maker.presets import Preset, PresetRegistry
from sticker_maker.schedulers import SCHEDULER_NAMES

MAX_SEED = 2**32 - 1
MAX_PROMPT = 2000
MAX_SIDE = 2048
MIN_SIDE = 64

Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)]
#: a sampler's name: checked by GenerationRequest, listed as an enum in the OpenAPI description
SchedulerName = Annotated[str, Field(json_schema_extra={"enum": list(SCHEDULER_NAMES)})]
#: how output files are encoded (``jpg`` has no transparency: stickers go on white)
OutputFormat = Literal["png", "webp", "jpg"]


class GenerationRequest(BaseModel):
    """What a client may ask for. ``None`` means "the preset's default"."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    preset: str = Field(default="sticker-maker", max_length=200)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT)
    width: Side | None = None
    height: Side | None = None
    steps: int | None = Field(default=None, ge=1, le=100)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    scheduler: SchedulerName | None = None
    seed: int | None = Field(default=None, ge=-1, le=MAX_SEED)
    samples: int = Field(default=1, ge=1, le=4)
    lora_scale: float | None = Field(default=None, ge=0.0, le=4.0)
    upscale: bool = False
    upscale_steps: int = Field(default=10, ge=1, le=50)
    #: die-cut finishing of the sticker outputs; None: the preset's (the bare cut-out)
    finishing: Finishing | None = None
    output_format: OutputFormat = Field(
        default="png", description="png (lossless), webp or jpg (no transparency: on white)"
    )
    output_quality: int = Field(
        default=90, ge=0, le=100, description="webp/jpg quality 0-100 (png: ignored)"
    )

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str | None) -> str | None:
        if value is not None and value not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler {value!r}; allowed: {', '.join(SCHEDULER_NAMES)}")
        return value

    @field_validator("preset", "prompt", "negative_prompt")
    @classmethod
    def _storable_text(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
        return value

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Reference(BaseModel):
    """A reference picture that the stickers are of (IP-Adapter, see README "Stickers of
    you"). ``image`` is the storage name of the checked upload: the job owns it and it is
    deleted with the job's outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    #: how much the picture steers the image (IP-Adapter scale), 0-1
    ip_adapter_weight: float = Field(ge=0.0, le=1.0)
    #: noise mixed into the picture's embedding (looser likeness), 0-1
    ip_adapter_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    #: img2img: how far from the picture to go (1 = from noise); None: from noise
    strength: float | None = Field(default=None, gt=0.0, le=1.0)


class Expression(BaseModel):
    """One sticker of a pack: its expression, the emoji it is tagged with, and the words
    added to the character's prompt for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=60)
    emoji: str = Field(min_length=1, max_length=16)
    prompt: str = Field(min_length=1, max_length=200)


class JobInput(BaseModel):
    """A fully resolved generation: everything the worker needs, nothing optional.

    A pack (``kind = "pack"``) is a JobInput with ``expressions``: one sticker per
    expression (``samples`` equals their number), all of one seed, denoised together.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    scheduler: str
    seed: int
    samples: int
    lora_scale: float
    upscale: bool
    upscale_steps: int
    #: None: the preset's remover and the bare cut-out on the image's canvas
    finishing: Finishing | None = None
    output_format: OutputFormat = "png"
    output_quality: int = 90
    #: stickers of the subject of a picture (None: from the prompt alone)
    reference: Reference | None = None
    #: a pack's stickers, one per expression (empty: not a pack)
    expressions: tuple[Expression, ...] = ()

    def seeds(self) -> list[int]:
        """Image i of a batch uses ``seed + i`` (wrapping at 2**32); every sticker of a
        pack uses ``seed`` (one character: same noise, another expression)."""
        if self.expressions:
            return [self.seed] * self.samples
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.samples)]

    def prompts(self) -> list[str]:
        """Each image's prompt, before the preset's template: a pack's sticker adds its
        expression's words to the character."""
        if self.expressions:
            return [f"{self.prompt}, {e.prompt}" for e in self.expressions]
        return [self.prompt] * self.samples

    @property
    def files(self) -> list[str]:
        """Storage names this input owns (the reference picture), deleted with the job."""
        return [self.reference.image] if self.reference is not None else []


def batch_key(job: JobInput) -> tuple[Any, ...]:
    """Jobs with equal keys can share one denoising call (same pipeline-wide settings).

    Prompts, seeds, samples and finishing may differ. Whether there is a negative prompt
    is part of the key: without one, SDXL uses zeros instead of an encoded empty prompt,
    and a call has one way or the other for all its images.
    """
    return (
        job.preset,
        job.width,
        job.height,
        job.steps,
        job.guidance_scale,
        job.scheduler,
        job.lora_scale,
        job.upscale,
        job.upscale_steps if job.upscale else 0,
        bool(job.negative_prompt),
    )


def batch_key_text(job: JobInput) -> str:
    """:func:`batch_key` as the text stored with a queued job (the claim compares it)."""
    return "|".join(map(str, batch_key(job)))


def parse_request(data: Any, prefix: str = "") -> GenerationRequest:
    """Validate untrusted data into a request, raising :class:`InvalidInput` naming fields."""
    try:
        return GenerationRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_validation(exc, prefix) from None


def invalid_from_validation(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Turn pydantic's errors into field errors like ``input.width: must be ≤ 2048``."""
    return InvalidInput(validation_errors(exc.errors(), prefix))


def validation_errors(errors: Any, prefix: str = "") -> list[FieldError]:
    """pydantic / FastAPI error dicts → :class:`FieldError` list naming each field."""
    result = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if p != "body")
        field = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "body")
        result.append(FieldError(field, _describe(err)))
    return result


def _describe(err: Any) -> str:
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{shown} is out of range ({_range_text(kind, ctx)})"
    if kind == "multiple_of":
        return f"{shown} must be a multiple of {ctx['multiple_of']}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not an integer"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not a boolean (true or false)"
    if kind == "literal_error":
        return f"{shown} is not allowed; allowed: {ctx['expected']}"
    if kind == "json_invalid":
        return "is not valid JSON"
    if kind in ("dict_type", "model_attributes_type"):
        return "must be a JSON object"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "string_too_long":
        return f"is longer than {ctx['max_length']} characters"
    if kind == "string_too_short":
        return "must not be empty"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _range_text(kind: str, ctx: dict[str, Any]) -> str:
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}"
    return f"must be < {ctx['lt']}"


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def resolve(request: GenerationRequest, presets: PresetRegistry) -> JobInput:
    """Fill the preset's defaults and draw a seed when none (or -1) was given."""
    preset: Preset = presets.get(request.preset)
    if request.upscale and (problem := preset.upscale_problem()):
        raise InvalidInput(problem, "upscale")
    seed = request.seed if request.seed is not None and request.seed >= 0 else random_seed()
    return JobInput(
        preset=preset.name,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width or preset.width,
        height=request.height or preset.height,
        steps=request.steps or preset.steps,
        guidance_scale=(
            request.guidance_scale if request.guidance_scale is not None else preset.guidance_scale
        ),
        scheduler=request.scheduler or preset.scheduler,
        seed=seed,
        samples=request.samples,
        lora_scale=request.lora_scale if request.lora_scale is not None else preset.lora_scale,
        upscale=request.upscale,
        upscale_steps=request.upscale_steps,
        finishing=_resolve_finishing(request.finishing, preset),
        output_format=request.output_format,
        output_quality=request.output_quality,
    )


def _resolve_finishing(finishing: Finishing | None, preset: Preset) -> Finishing | None:
    """Fill the preset's remover into requested finishing options."""
    if finishing is None:
        return None
    remover = resolve_remover(preset, finishing.remover, "finishing.remover")
    return finishing.model_copy(update={"remover": remover})
