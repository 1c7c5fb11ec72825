"""upscale=true, as the original service did it: ESRGAN to 2x, then a tiled SD 1.5 refine.

1. The preset's ``upscaler`` (an ESRGAN-family model, loaded with spandrel) runs tile by
   tile and its output is resized to exactly 2x the generated size.
2. The preset's ``refiner`` (an SD 1.5 img2img pipeline) repaints each tile lightly:
   ``upscale_steps`` Euler steps at denoise 0.2, CFG 8, prompt "svg sticker", negative
   "nsfw", 512 px tiles with 32 px padding, blended across the overlaps.

Denoise follows the original's (ComfyUI) meaning: ``upscale_steps`` steps are actually
run on the last ``denoise`` fraction of the noise schedule. diffusers' img2img runs
``int(num_inference_steps * strength)`` steps, so it gets ``steps / denoise``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from sticker_maker.engine import tiles
from sticker_maker.engine.schedulers import make_scheduler
from sticker_maker.errors import JobCanceled, ModelUnavailable

REFINE_PROMPT = "svg sticker"
REFINE_NEGATIVE = "nsfw"
REFINE_GUIDANCE = 8.0
REFINE_SAMPLER = "Euler"
#: refiner tiles denoised in one pipeline call (all tiles have the same size)
REFINE_BATCH = 4


@dataclass(frozen=True)
class RefinePlan:
    """How one image is refined: its tiles, batches and diffusers step counts."""

    windows: list[tiles.Window]
    num_inference_steps: int
    steps_per_call: int

    @property
    def calls(self) -> int:
        return math.ceil(len(self.windows) / REFINE_BATCH)

    @property
    def total_steps(self) -> int:
        return self.calls * self.steps_per_call


def refine_plan(
    width: int, height: int, steps: int, denoise: float, tile: int, padding: int
) -> RefinePlan:
    """Tiles and step counts for refining a ``width`` x ``height`` (already 2x) image."""
    n = max(steps, round(steps / denoise))
    per_call = min(int(n * denoise), n)
    return RefinePlan(tiles.plan(width, height, tile, padding), n, max(per_call, 1))


def _to_tensor(image: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device, dtype)


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def _upscale_tile(model: Any, tile: torch.Tensor) -> torch.Tensor:
    """One tile through the upscaler; a tile that comes out NaN/inf in half precision
    (a black tile once clamped) is run again in float32. Raises if it still is not finite."""
    out = model(tile).float()
    if not torch.isfinite(out).all() and tile.dtype != torch.float32:
        original = tile.dtype
        model.to(dtype=torch.float32)
        try:
            out = model(tile.float()).float()
        finally:
            model.to(dtype=original)
    if not torch.isfinite(out).all():
        raise ModelUnavailable(
            "the upscaler produced NaN pixels even in float32; check the preset's upscaler "
            "model file"
        )
    return out.clamp_(0, 1)


def esrgan_2x(
    model: Any,
    image: Image.Image,
    *,
    tile: int,
    padding: int,
    should_cancel: Callable[[], bool] | None = None,
) -> Image.Image:
    """Upscale with a spandrel model tile by tile, then resize to exactly 2x."""
    param = next(model.model.parameters())
    device, dtype = param.device, param.dtype
    scale = int(model.scale)
    width, height = image.size
    blender = tiles.Blender(width * scale, height * scale, 3, padding)
    with torch.inference_mode():
        for window in tiles.plan(width, height, tile, padding):
            if should_cancel is not None and should_cancel():
                raise JobCanceled("canceled by request")
            crop = image.crop(
                (window.x, window.y, window.x + window.width, window.y + window.height)
            )
            out = _upscale_tile(model, _to_tensor(crop, device, dtype))
            blender.add(window, out[0].permute(1, 2, 0).cpu().numpy(), scale)
    upscaled = _to_image(blender.result())
    target = (width * 2, height * 2)
    if upscaled.size != target:
        upscaled = upscaled.resize(target, Image.Resampling.LANCZOS)
    return upscaled


def refine(
    pipe: Any,
    scheduler_config: Any,
    image: Image.Image,
    *,
    seed: int,
    plan: RefinePlan,
    padding: int,
    denoise: float,
    on_step: Callable[[], None],
    should_cancel: Callable[[], bool] | None = None,
) -> Image.Image:
    """Repaint ``image`` lightly with an SD 1.5 img2img pipeline, tile by tile, blended."""
    width, height = image.size
    blender = tiles.Blender(width, height, 3, padding)
    windows = plan.windows

    def on_step_end(_p: Any, _step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        on_step()
        if should_cancel is not None and should_cancel():
            raise JobCanceled("canceled by request")
        return kwargs

    for start in range(0, len(windows), REFINE_BATCH):
        batch = windows[start : start + REFINE_BATCH]
        crops = [image.crop((w.x, w.y, w.x + w.width, w.y + w.height)) for w in batch]
        generators = [
            torch.Generator("cpu").manual_seed((seed + start + i) % 2**32)
            for i in range(len(batch))
        ]
        pipe.scheduler = make_scheduler(REFINE_SAMPLER, scheduler_config)
        with torch.inference_mode():
            result = pipe(
                prompt=[REFINE_PROMPT] * len(batch),
                negative_prompt=[REFINE_NEGATIVE] * len(batch),
                image=crops,
                strength=denoise,
                num_inference_steps=plan.num_inference_steps,
                guidance_scale=REFINE_GUIDANCE,
                generator=generators,
                output_type="np",
                callback_on_step_end=on_step_end,
            )
        if not np.isfinite(result.images).all():
            raise ModelUnavailable(
                "the refiner produced NaN pixels (its float16 VAE or UNet overflowed): run "
                "in bfloat16 (STICKER_MAKER_DTYPE=bfloat16) or float32, or choose another "
                "refiner for the preset"
            )
        for window, pixels in zip(batch, result.images, strict=True):
            blender.add(window, pixels)
    return _to_image(blender.result())
