"""Live previews: a job's latents decoded every few steps by a tiny autoencoder.

The operator names one (``STICKER_MAKER_PREVIEW_VAE`` / ``--preview-vae``: a Hub id such
as ``madebyollin/taesdxl`` or a local folder) and how often (``STICKER_MAKER_PREVIEW_EVERY``
/ ``--preview-every`` steps); previews are off when either is unset. diffusers'
``AutoencoderTiny`` (TAESD) decodes SDXL's scaled latents directly, about a hundred
times cheaper than the full VAE, so a preview costs a few milliseconds per image.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from PIL import Image

from sticker_maker.errors import InvalidInput

#: the longest side of a preview, in pixels
PREVIEW_SIZE = 256
#: JPEG quality of a preview
PREVIEW_QUALITY = 70


def load_preview_vae(source: str, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """``AutoencoderTiny`` from a Hub id or a local folder, on ``device`` in ``dtype``;
    ``InvalidInput`` naming the setting when it does not load."""
    try:
        from diffusers import AutoencoderTiny

        vae = AutoencoderTiny.from_pretrained(source, torch_dtype=dtype)
    except Exception as exc:
        raise InvalidInput(
            f"the preview autoencoder {source!r} (STICKER_MAKER_PREVIEW_VAE / --preview-vae) "
            f"does not load as diffusers' AutoencoderTiny: {exc}. Use a folder saved by "
            "AutoencoderTiny.save_pretrained or a Hub id such as madebyollin/taesdxl, or "
            "unset it to turn previews off.",
            "preview_vae",
        ) from None
    return vae.to(device).eval().requires_grad_(False)


class PreviewDecoder:
    """Decodes latents to small JPEGs every ``every`` steps (see :meth:`due`)."""

    def __init__(self, vae: Any, every: int, size: int = PREVIEW_SIZE) -> None:
        self.vae = vae
        self.every = every
        self.size = size

    @classmethod
    def load(cls, source: str, every: int, device: Any, dtype: torch.dtype) -> PreviewDecoder:
        return cls(load_preview_vae(source, device, dtype), every)

    def due(self, done: int, total: int) -> bool:
        """Whether a lane that has taken ``done`` of ``total`` steps gets a preview now
        (never after its last step: the real image follows)."""
        return done < total and done % self.every == 0

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """SDXL latents (N, 4, h, w), as the sampler holds them, → N small RGB images."""
        vae = self.vae
        param = next(iter(vae.parameters()))
        with torch.inference_mode():
            latents = shrink(latents, self.size // 8)
            scaled = latents.to(param.device, param.dtype) / vae.config.scaling_factor
            image = vae.decode(scaled, return_dict=False)[0]  # in [-1, 1]
            image = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        arrays = image.permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for array in arrays:
            picture = Image.fromarray(array)
            picture.thumbnail((self.size, self.size))
            out.append(picture)
        return out


def shrink(latents: torch.Tensor, side: int) -> torch.Tensor:
    """Latents no larger than ``side`` on their longer side (antialiased): the tiny
    autoencoder then decodes a preview-sized image at once, not a full-size one to be
    thrown away (a 1024² SDXL image: 128² latents → 32², 16 times less decoder work)."""
    height, width = latents.shape[-2:]
    if max(height, width) <= side:
        return latents
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return torch.nn.functional.interpolate(
        latents.float(), size=size, mode="bilinear", antialias=True
    ).to(latents.dtype)


def strip_jpeg(images: list[Image.Image], quality: int = PREVIEW_QUALITY) -> bytes:
    """One job's preview images side by side, as a JPEG no wider than :data:`PREVIEW_SIZE`
    per image (a job of several images shows them all)."""
    width = sum(image.width for image in images)
    height = max(image.height for image in images)
    sheet = Image.new("RGB", (width, height), "white")
    at = 0
    for image in images:
        sheet.paste(image, (at, 0))
        at += image.width
    buffer = io.BytesIO()
    sheet.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def verify_preview_vae(source: str) -> None:
    """Load the configured preview autoencoder once on the CPU and drop it: a start-up
    check, so one that does not load stops ``serve`` / ``worker`` at start."""
    if source:
        load_preview_vae(source)
