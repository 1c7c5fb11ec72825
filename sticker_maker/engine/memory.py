"""Out-of-memory while generating: make room once, then say what to do.

A CUDA out-of-memory error in the middle of a job is often caused by other cached models
(another base, a refiner, an upscaler) that sit idle on the GPU. :func:`retry_out_of_memory`
drops every cached model the job does not use and runs the failed call once more; if it
fails again, :func:`explain_out_of_memory` turns the error into one a user can act on: the
model, what was asked, the memory free, and the switches to try.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from sticker_maker.engine import device as device_mod
from sticker_maker.errors import ModelUnavailable

if TYPE_CHECKING:
    from sticker_maker.engine.cache import ModelCache
    from sticker_maker.params import JobInput
    from sticker_maker.presets import Preset

T = TypeVar("T")


@contextlib.contextmanager
def explain_out_of_memory(
    job: JobInput,
    placement: device_mod.Placement,
    images: int | None = None,
    preset: Preset | None = None,
) -> Iterator[None]:
    """Turn an out-of-memory error while generating into an actionable message."""
    try:
        yield
    except Exception as exc:
        if not device_mod.is_out_of_memory(exc):
            raise
        device_mod.free_memory(placement)
        size = f"{job.width}x{job.height}" + (" upscaled 2x" if job.upscale else "")
        model = f"preset {job.preset!r}" + (f" (base {preset.base!r})" if preset else "")
        raise ModelUnavailable(
            f"out of memory while generating {images or job.samples} image(s) at {size} with "
            f"{model}{device_mod.memory_note(placement)}. Ask for fewer samples or a smaller "
            "size, or free memory: serve --offload model (STICKER_MAKER_OFFLOAD=model) or "
            "--pipeline-cache 1"
            + (" or a smaller --max-batch." if images and images > job.samples else ".")
        ) from exc


def retry_out_of_memory(
    call: Callable[[], T], cache: ModelCache, keep: list[tuple[str, str]]
) -> tuple[T, int]:
    """``call()``; on out-of-memory drop every cached model but ``keep`` ((kind, ref)
    pairs) and call once more. Returns the result and how many models were dropped (an
    error of the retry propagates)."""
    try:
        return call(), 0
    except Exception as exc:
        if not device_mod.is_out_of_memory(exc) or not cache.droppable(keep):
            raise
    # Out of the except block: the error's frames (and the tensors they hold) are gone.
    dropped = cache.drop_all_but(keep)
    return call(), dropped
