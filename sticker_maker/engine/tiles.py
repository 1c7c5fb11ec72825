"""Overlapping tiles and their feathered blend (numpy only).

Both upscale stages work tile by tile so memory stays bounded at any size: every
window is ``tile + 2 * padding`` px (or the whole side when smaller), neighbours
overlap by at least ``2 * padding`` px, and outputs are averaged with weights that
ramp linearly across the overlap, so no seam shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    x: int
    y: int
    width: int
    height: int


def _starts(size: int, window: int, tile: int) -> list[int]:
    """Window start offsets along one side: evenly spread, multiples of 8, ends at ``size``."""
    if size <= window:
        return [0]
    count = math.ceil((size - window) / tile) + 1
    span = size - window
    starts = [(i * span // (count - 1)) // 8 * 8 for i in range(count)]
    starts[-1] = span
    return starts


def plan(width: int, height: int, tile: int, padding: int) -> list[Window]:
    """Windows covering a ``width`` x ``height`` image, all of the same size, row by row."""
    win_w = min(tile + 2 * padding, width)
    win_h = min(tile + 2 * padding, height)
    return [
        Window(x, y, win_w, win_h)
        for y in _starts(height, win_h, tile)
        for x in _starts(width, win_w, tile)
    ]


def _ramp(length: int, start_edge: bool, end_edge: bool, ramp: int) -> np.ndarray:
    """1-D weights: 1 inside, rising/falling linearly over ``ramp`` px at inner edges."""
    weights = np.ones(length, dtype=np.float32)
    if ramp <= 0:
        return weights
    rise = (np.arange(length, dtype=np.float32) + 0.5) / ramp
    if not start_edge:
        weights = np.minimum(weights, rise)
    if not end_edge:
        weights = np.minimum(weights, rise[::-1])
    return weights


class Blender:
    """Accumulates tile outputs (``H x W x C`` float arrays) into one feathered image."""

    def __init__(self, width: int, height: int, channels: int, ramp: int) -> None:
        self.width, self.height, self.ramp = width, height, ramp
        self._sum = np.zeros((height, width, channels), dtype=np.float32)
        self._weight = np.zeros((height, width, 1), dtype=np.float32)

    def add(self, window: Window, pixels: np.ndarray, scale: int = 1) -> None:
        """Add the output for ``window`` (given in input coordinates, times ``scale``)."""
        x, y = window.x * scale, window.y * scale
        h, w = pixels.shape[:2]
        wx = _ramp(w, x == 0, x + w >= self.width, self.ramp * scale)
        wy = _ramp(h, y == 0, y + h >= self.height, self.ramp * scale)
        weight = (wy[:, None] * wx[None, :])[..., None]
        self._sum[y : y + h, x : x + w] += pixels.astype(np.float32) * weight
        self._weight[y : y + h, x : x + w] += weight

    def result(self) -> np.ndarray:
        """The blended image, float32 in the inputs' range."""
        return self._sum / np.maximum(self._weight, 1e-8)
