"""Finishing options and the inputs of the upload job kinds (``cutout``, ``split``).

A job's ``input`` is kind-specific and stored as JSON beside its ``kind``:

==========  =====================================  ==========================================
kind        input                                  made by
==========  =====================================  ==========================================
generate    :class:`~sticker_maker.params.JobInput`  ``POST /v1/jobs``, the seed-compatible APIs
cutout      :class:`CutoutInput`                   ``POST /v1/cutouts`` (an uploaded image)
split       :class:`SplitInput`                    ``POST /v1/splits`` (an uploaded sheet)
==========  =====================================  ==========================================

:class:`Finishing` is what a client may ask of each sticker output (remover, die-cut
border, shadow, trim); ``None`` fields mean "the preset's default" until
:func:`resolve_remover` fills them at the edge. Light: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sticker_maker.errors import InvalidInput
from sticker_maker.presets import Preset

REMOVERS = ("auto", "model", "none")
#: the widest die-cut border a client may ask for, in px
MAX_BORDER = 256
#: progress stages of an upload job: read the image, cut out, finish and encode
UPLOAD_STEPS = 3

Remover = Literal["auto", "model", "none"]
#: holes in the cut-out (see sticker_maker.finishing.remove_background)
Holes = Literal["auto", "keep", "cut"]
Border = int | None


class Finishing(BaseModel):
    """Finishing of each sticker output: background removal, then an optional die cut.

    * ``remover``: ``auto`` (model-free on flat backdrops, else the preset's learned model
      when it has one, else model-free with a note in the logs), ``model``, ``none``;
      default: the preset's ``background_remover``.
    * ``border``: white die-cut border in px; ``null`` = in proportion to the size
      (about 2.5 % of the longer side), ``0`` = the bare cut-out.
    * ``shadow``: a soft drop shadow below the sticker.
    * ``trim``: crop to the content with an even transparent margin; ``false`` keeps the
      image's canvas (border and shadow are clipped at its edge).
    * ``holes``: regions of backdrop the subject encloses (a wheel, a ring, a handle):
      ``auto`` cuts those the evidence says are backdrop and keeps backdrop-coloured art
      (eye whites, white fur), ``keep`` fills them all (the classic die cut), ``cut``
      removes them all. The die-cut border rings the holes that stay open.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    remover: Remover | None = None
    border: Border = Field(default=None, ge=0, le=MAX_BORDER)
    shadow: bool = False
    trim: bool = True
    holes: Holes = "auto"


def preset_remover(preset: Preset) -> tuple[str, str | None]:
    """The preset's default method and its learned model (a rembg name or .onnx path).

    ``background_remover`` is ``auto``, ``model``, ``none``, or a model, which means
    ``model`` with that model.
    """
    value = preset.background_remover
    if value in REMOVERS:
        return value, None
    return "model", value


def resolve_remover(preset: Preset, requested: str | None, field: str) -> str:
    """The remover a job will use, or :class:`InvalidInput` naming ``field``."""
    default, model = preset_remover(preset)
    if requested is None:
        if default == "model" and model is None:
            return "auto"  # a preset saying "model" without one: do the best without it
        return default
    if requested == "model" and model is None:
        raise InvalidInput(
            f"'model' needs a learned background remover, and preset {preset.name!r} has "
            "none (its background_remover is a method, not a rembg model name or .onnx "
            "path); use 'auto' or 'none'",
            field,
        )
    return requested


class UploadInput(BaseModel):
    """What an upload job stores: the uploaded file and the finishing options.

    ``image`` is the storage name of the upload (rendered as its URL); it is owned by
    the job and deleted with its outputs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str
    image: str
    width: int
    height: int
    content_type: str
    remover: Remover
    border: Border = None
    shadow: bool = False

    @property
    def steps(self) -> int:
        """Progress stages (the generation input's ``steps`` counts denoising steps)."""
        return UPLOAD_STEPS

    @property
    def files(self) -> list[str]:
        """Storage names this input owns."""
        return [self.image]


class CutoutInput(UploadInput):
    """``kind = "cutout"``: one image in, one sticker out."""

    trim: bool = True
    holes: Holes = "auto"


class SplitInput(UploadInput):
    """``kind = "split"``: a sticker sheet in, one trimmed sticker per piece out."""


__all__ = [
    "MAX_BORDER",
    "REMOVERS",
    "CutoutInput",
    "Finishing",
    "Holes",
    "SplitInput",
    "UploadInput",
    "preset_remover",
    "resolve_remover",
]
