"""Synthetic artwork and small helpers shared by the finishing-stage tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def noto_path() -> Path:
    """``$STICKER_MAKER_NOTO_DATA``, else the subset in the repo, ``tests/data/stickers-noto``."""
    env = os.environ.get("STICKER_MAKER_NOTO_DATA")
    return Path(env) if env else REPO / "tests" / "data" / "stickers-noto"


def holes_path() -> Path:
    """``$STICKER_MAKER_HOLES_DATA``, else the subset in the repo, ``tests/data/stickers-holes``."""
    env = os.environ.get("STICKER_MAKER_HOLES_DATA")
    return Path(env) if env else REPO / "tests" / "data" / "stickers-holes"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def alpha_of(img: Image.Image) -> np.ndarray:
    """Alpha channel of an RGBA image as uint8."""
    assert img.mode == "RGBA"
    return np.asarray(img)[..., 3]


def supersampled_mask(size: tuple[int, int], draw: Callable[[np.ndarray, int], None]) -> np.ndarray:
    """Anti-aliased float mask: ``draw(canvas, scale)`` paints 255 on a 4x canvas."""
    w, h = size
    big = np.zeros((h * 4, w * 4), np.uint8)
    draw(big, 4)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> Image.Image:
    """``fg * a + bg * (1 - a)`` in 8-bit, as an RGB image."""
    a = alpha[..., None]
    out = fg.astype(np.float32) * a + bg.astype(np.float32) * (1.0 - a)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


def star(canvas: np.ndarray, s: int, centre: tuple[int, int] = (100, 100), r: int = 70) -> None:
    """Paint a five-pointed star (scaled by ``s``) on ``canvas``."""
    angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    pts = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(pts * s).astype(np.int32)], 255, lineType=cv2.LINE_AA)


def disc_rgba(
    size: int = 400, radius: int = 100, colour: tuple[int, int, int] = (30, 90, 200)
) -> Image.Image:
    """An anti-aliased disc centred on a transparent square canvas."""

    def draw(canvas: np.ndarray, s: int) -> None:
        cv2.circle(canvas, (size * s // 2, size * s // 2), radius * s, 255, -1, cv2.LINE_AA)

    alpha = supersampled_mask((size, size), draw)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


def gradient_backdrop(size: int, seed: int, sigma: float = 7.0) -> np.ndarray:
    """A light two-colour gradient with soft blotches and Gaussian noise (float, HxWx3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = (0.6 * xx + 0.4 * yy)[..., None]
    c1, c2 = np.array([236.0, 226.0, 244.0]), np.array([214.0, 242.0, 226.0])
    bg = c1 * (1 - t) + c2 * t
    blotch = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (size, size))
    bg += 6.0 * cv2.GaussianBlur(blotch, (0, 0), size / 20)[..., None]
    return bg + rng.normal(0, sigma, bg.shape)
