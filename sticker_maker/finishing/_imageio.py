"""Conversions between PIL images and numpy arrays used across the finishing stage."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from ._errors import FinishingError


def ensure_image(image: object, argument: str = "image") -> Image.Image:
    """Return ``image`` as a loaded PIL image, or raise a clear error."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise FinishingError(f"{argument}: numpy arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            return Image.fromarray(arr, "L")
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return Image.fromarray(arr, "RGB" if arr.shape[2] == 3 else "RGBA")
        raise FinishingError(f"{argument}: expected an HxW, HxWx3 or HxWx4 array, got {arr.shape}")
    if not isinstance(image, Image.Image):
        raise FinishingError(
            f"{argument} must be a PIL.Image.Image or a uint8 numpy array, "
            f"got {type(image).__name__}"
        )
    if image.width < 1 or image.height < 1:
        raise FinishingError(f"{argument} is empty ({image.width}x{image.height})")
    return image


def to_rgba(image: Image.Image) -> Image.Image:
    """Convert any PIL image to RGBA, honouring palette transparency and EXIF rotation."""
    if image.getexif().get(0x0112, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGBA":
        return image
    if image.mode == "P" and "transparency" in image.info:
        return image.convert("RGBA")
    if image.mode in ("LA", "PA", "RGBa", "La"):
        return image.convert("RGBA")
    return image.convert("RGB").convert("RGBA")


def has_transparency(rgba: np.ndarray) -> bool:
    """Whether an HxWx4 array has any pixel that is not fully opaque."""
    return bool((rgba[..., 3] < 255).any())


def rgba_array(image: Image.Image) -> np.ndarray:
    """HxWx4 uint8 array of ``image`` (converted to RGBA)."""
    return np.asarray(to_rgba(image), dtype=np.uint8)


def rgb_array(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 array of ``image`` with any transparency flattened onto white."""
    rgba = to_rgba(image)
    arr = np.asarray(rgba, dtype=np.uint8)
    if not has_transparency(arr):
        return np.ascontiguousarray(arr[..., :3])
    a = arr[..., 3:4].astype(np.float32) / 255.0
    rgb = arr[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def from_rgba(arr: np.ndarray) -> Image.Image:
    """PIL RGBA image from an HxWx4 uint8 array."""
    return Image.fromarray(np.ascontiguousarray(arr), "RGBA")
