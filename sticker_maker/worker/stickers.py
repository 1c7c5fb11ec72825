"""Finishing inside the model process: sticker outputs for every job kind.

* generation: each generated image (after upscaling, when asked) is cut out; with
  ``finishing`` options it is also die-cut (border, shadow, trim), else it stays the bare
  cut-out on the image's canvas, as the hosted original returned it;
* ``cutout``: the uploaded image, cut out and die-cut;
* ``split``: the uploaded sheet, one die-cut sticker per piece, in reading order.

Needs only the finishing stack (numpy, OpenCV, Pillow): no torch, no weights.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable

from PIL import Image, ImageOps

from sticker_maker.errors import InvalidInput, JobCanceled
from sticker_maker.inputs import CutoutInput, Finishing, SplitInput, preset_remover
from sticker_maker.presets import Preset

LogFn = Callable[[str], None]
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

#: the most stickers one sheet may give (each is an output file)
MAX_PIECES = 100
#: the log line of a generated image whose cut-out found nothing: the job still succeeds
#: (the image is what the GPU made and is kept); its sticker output is marked ``empty``
EMPTY_WARNING = (
    "warning: empty sticker: the cut-out found nothing on the backdrop, so this image's "
    "sticker is fully transparent (the image itself is kept). Try another seed or prompt, "
    'or finishing.remover "none" to keep the whole image'
)


def remover_args(preset: Preset, method: str) -> dict[str, object]:
    """``method``/``model`` keywords for the finishing stage, the model from the preset."""
    return {"method": method, "model": preset_remover(preset)[1]}


def finish(
    image: Image.Image,
    preset: Preset,
    finishing: Finishing | None,
    log: LogFn,
    *,
    generated: bool = True,
) -> Image.Image:
    """The sticker (RGBA) made from ``image``; the notes of the cut-out go to ``log``.

    ``finishing=None`` is the preset's default: its remover, the bare cut-out, the
    image's canvas. A cut-out that found nothing is returned as it is (with a log line).
    """
    from sticker_maker.finishing import FinishingError, die_cut, remove_background

    method = finishing.remover if finishing and finishing.remover else preset_remover(preset)[0]
    if method == "model" and preset_remover(preset)[1] is None:
        method = "auto"
    t0 = time.perf_counter()
    holes = finishing.holes if finishing else "auto"
    cut = remove_background(image, **remover_args(preset, method), holes=holes)  # type: ignore[arg-type]
    for note in cut.notes:
        log(f"cut-out: {note}")
    log(f"cut-out ({cut.method_used}) in {(time.perf_counter() - t0) * 1000:.0f} ms")
    if cut.image.getextrema()[3][1] == 0:
        if generated:  # an upload job fails instead (its sticker is all it makes)
            log(EMPTY_WARNING)
        return cut.image
    if finishing is None:
        return cut.image
    try:
        sticker = die_cut(
            cut.image,
            border=finishing.border,
            shadow=finishing.shadow,
            keep_canvas=not finishing.trim,
            holes=finishing.holes,
        )
    except FinishingError as exc:
        raise InvalidInput(str(exc), "finishing") from None
    what = "bare cut-out" if finishing.border == 0 else f"border {_border_text(finishing)}"
    log(
        f"die-cut: {what}{', shadow' if finishing.shadow else ''}, "
        f"{'trimmed' if finishing.trim else 'canvas kept'}: {sticker.width}x{sticker.height}"
    )
    return sticker


def _border_text(finishing: Finishing) -> str:
    return "in proportion to the size" if finishing.border is None else f"{finishing.border} px"


def open_upload(data: bytes) -> Image.Image:
    """Decode an uploaded image the API already checked, turned upright (EXIF)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "WEBP"))
        image.load()
    return ImageOps.exif_transpose(image)


def _check_cancel(should_cancel: CancelFn | None) -> None:
    if should_cancel is not None and should_cancel():
        raise JobCanceled("canceled")


def cutout(
    job: CutoutInput,
    data: bytes,
    preset: Preset,
    *,
    on_progress: ProgressFn,
    should_cancel: CancelFn | None,
    log: LogFn,
) -> Image.Image:
    """The sticker of a ``cutout`` job."""
    image = open_upload(data)
    log(f"read {job.content_type} {image.width}x{image.height}")
    on_progress(1, job.steps)
    _check_cancel(should_cancel)
    options = Finishing(
        remover=job.remover, border=job.border, shadow=job.shadow, trim=job.trim, holes=job.holes
    )
    sticker = finish(image, preset, options, log, generated=False)
    if sticker.getextrema()[3][1] == 0:
        raise InvalidInput(
            "nothing was found to cut out: the image looks like an empty backdrop (the job "
            "failed and costs nothing)",
            "image",
        )
    on_progress(2, job.steps)
    return sticker


def split(
    job: SplitInput,
    data: bytes,
    preset: Preset,
    *,
    on_progress: ProgressFn,
    should_cancel: CancelFn | None,
    log: LogFn,
) -> list[Image.Image]:
    """The stickers of a ``split`` job, in reading order."""
    from sticker_maker.finishing import split_sheet

    image = open_upload(data)
    log(f"read {job.content_type} {image.width}x{image.height}")
    on_progress(1, job.steps)
    _check_cancel(should_cancel)
    t0 = time.perf_counter()
    stickers = split_sheet(
        image,
        border=job.border,
        shadow=job.shadow,
        **remover_args(preset, job.remover),  # type: ignore[arg-type]
    )
    log(f"split into {len(stickers)} sticker(s) in {(time.perf_counter() - t0) * 1000:.0f} ms")
    if not stickers:
        raise InvalidInput(
            "no stickers were found on the sheet (is it an empty backdrop?)", "image"
        )
    if len(stickers) > MAX_PIECES:
        raise InvalidInput(
            f"the sheet has {len(stickers)} pieces; at most {MAX_PIECES} stickers per sheet",
            "image",
        )
    on_progress(2, job.steps)
    return stickers
