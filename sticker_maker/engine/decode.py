"""Decoding SDXL latents: how many images per VAE call, and a float16 VAE that overflows
decoded again in float32 (used by :class:`~sticker_maker.engine.denoise.DenoiseLoop`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.utils.torch_utils import get_module_execution_device

from sticker_maker.engine import device as device_mod

#: bytes one 1024² image takes in a float32 SDXL VAE decode (measured on the CPU: +3.8 GiB)
DECODE_BYTES_1024 = 3.8 * 1024**3
#: most images in one VAE call, whatever memory is free
DECODE_MAX = 8


def decode_slice(vae: Any, shape: Sequence[int]) -> int:
    """How many images of latent ``shape`` (N, C, h, w) to decode in one VAE call: what
    fits in 80 % of the memory free on the VAE's device (in float32, the worst case of an
    upcast), at least 1 and at most :data:`DECODE_MAX`."""
    pixels = shape[2] * shape[3] * 64  # the latents are 1/8 of each side
    per_image = DECODE_BYTES_1024 * pixels / 1024**2
    free = device_mod.free_bytes(get_module_execution_device(vae))
    if free is None:
        return DECODE_MAX
    return max(1, min(DECODE_MAX, int(0.8 * free // per_image)))


def decode_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Decode SDXL latents with ``vae``; an image that comes out NaN/inf is decoded again
    in float32.

    A float16 VAE whose config asks (``force_upcast``, the original SDXL VAE) decodes in
    float32; otherwise it decodes in its dtype, and images that overflow there (NaN or
    inf: a black square once stored) are decoded again in float32. The VAE is back in
    its dtype afterwards, whatever happened (an out-of-memory error included).
    """
    dtype = vae.dtype
    upcast = dtype == torch.float16 and vae.config.force_upcast
    image = _decode(vae, latents, torch.float32 if upcast else dtype)
    bad = ~torch.isfinite(image.flatten(1)).all(dim=1)
    if bad.any() and not upcast and dtype != torch.float32:
        image = image.float()
        image[bad] = _decode(vae, latents[bad], torch.float32).float()
    return image


def _decode(vae: Any, latents: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    original = vae.dtype
    if dtype != original:
        vae.to(dtype=dtype)
    try:
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean_t = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std_t = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std_t / vae.config.scaling_factor + mean_t
        else:
            latents = latents / vae.config.scaling_factor
        device = get_module_execution_device(vae)
        return vae.decode(latents.to(device), return_dict=False)[0]
    finally:
        if dtype != original:
            vae.to(dtype=original)
