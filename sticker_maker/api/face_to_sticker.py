"""``fofr/face-to-sticker`` as published: a photo of a face in, stickers of that person out.

The preset named ``face-to-sticker`` (or aliased ``fofr/face-to-sticker``) answers as
this Replicate model, with its published version ids and inputs (defaults as
published): ``image`` (required), ``prompt`` ("a person"), ``negative_prompt``,
``width``/``height`` (1024), ``steps`` (20), ``seed``, ``prompt_strength`` (7: the CFG
scale), ``instant_id_strength`` (1), ``ip_adapter_weight`` (0.2), ``ip_adapter_noise``
(0.5), ``upscale`` (false), ``upscale_steps`` (10). The output is a list of file URLs:
the image, then its transparent cut-out.

The published model also runs InstantID (an insightface face embedding and a
ControlNet). Those models are licensed for non-commercial use only, so they are not
run: ``instant_id_strength`` is accepted (0-1, as published) and has no effect; the
likeness comes from the IP-Adapter alone (README, "Stickers of you"). Facts:
``shared/reference/replicate-compat.md``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sticker_maker.errors import FieldError, InvalidInput
from sticker_maker.params import MAX_PROMPT, MAX_SEED, GenerationRequest, JobInput, Side, resolve
from sticker_maker.params import validation_errors as _errors
from sticker_maker.presets import Preset, PresetRegistry

FACE_TO_STICKER = "fofr/face-to-sticker"
#: the preset that is this model when no preset has the alias
PRESET_NAME = "face-to-sticker"
#: published version ids, the latest (used by model-name calls) first
VERSION_IDS = (
    "764d4827ea159608a07cdde8ddf1c6000019627515eb02b6b449695fd547e5ef",
    "a99a32fdaa9a9650cfc7900d54323d0d247dac69f7abb05eac0e742687a25662",
)
CREATED_AT = "2024-02-05T14:59:09.377Z"


class FaceInput(BaseModel):
    """fofr/face-to-sticker's inputs, with its published defaults and ranges."""

    model_config = ConfigDict(extra="forbid", title="Input")

    image: str = Field(
        max_length=12 * 1024 * 1024,
        description="An image of a person to be converted to a sticker",
        json_schema_extra={"format": "uri"},
    )
    prompt: str = Field(default="a person", max_length=MAX_PROMPT)
    negative_prompt: str = Field(
        default="", max_length=MAX_PROMPT, description="Things you do not want in the image"
    )
    width: Side = 1024
    height: Side = 1024
    steps: int = Field(default=20, ge=1, le=100)
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Fix the random seed for reproducibility"
    )
    prompt_strength: float = Field(
        default=7.0, ge=0.0, le=30.0, description="Strength of the prompt. This is the CFG scale"
    )
    instant_id_strength: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="How strong the InstantID will be (accepted; InstantID is "
        "non-commercial and not run here)",
    )
    ip_adapter_weight: float = Field(
        default=0.2, ge=0.0, le=1.0, description="How much the IP adapter will influence the image"
    )
    ip_adapter_noise: float = Field(
        default=0.5, ge=0.0, le=1.0, description="How much noise is added to the IP adapter input"
    )
    upscale: bool = Field(default=False, description="2x upscale the sticker")
    upscale_steps: int = Field(default=10, ge=1, le=50, description="Number of steps to upscale")


def is_face_model(preset: Preset) -> bool:
    """Whether ``preset`` answers as fofr/face-to-sticker."""
    aliases = {a.lower() for a in preset.aliases}
    return FACE_TO_STICKER in aliases or preset.name == PRESET_NAME


def parse(raw: Any) -> FaceInput:
    """The inputs, or InvalidInput naming ``input.<field>``."""
    if not isinstance(raw, dict):
        raise InvalidInput("must be a JSON object of the model's inputs", "input")
    try:
        return FaceInput.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc.errors(), "input.")) from None


def job_input(raw: Any, preset: str, presets: PresetRegistry) -> JobInput:
    """The resolved job (without its reference: the caller attaches the stored picture)."""
    face = parse(raw)
    fields = {
        "preset": preset,
        "prompt": face.prompt,
        "negative_prompt": face.negative_prompt,
        "width": face.width,
        "height": face.height,
        "steps": face.steps,
        "seed": face.seed,
        "guidance_scale": face.prompt_strength,
        "upscale": face.upscale,
        "upscale_steps": face.upscale_steps,
    }
    try:
        return resolve(GenerationRequest.model_validate(fields), presets)
    except ValidationError as exc:
        raise InvalidInput(_errors(exc.errors(), "input.")) from None
    except InvalidInput as exc:  # e.g. upscale without an upscaler: name the input
        named = [FieldError(f"input.{e.field}", e.message) for e in exc.errors]
        raise InvalidInput(named) from None


def shown_input(raw: dict[str, Any], image_url: str) -> dict[str, Any]:
    """The input as a prediction shows it: a ``data:`` image becomes its stored file's URL
    (a prediction never carries megabytes of base64 around)."""
    image = raw.get("image")
    if isinstance(image, str) and image[:5].lower() == "data:":
        return {**raw, "image": image_url}
    return raw
