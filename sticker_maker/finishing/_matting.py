"""From a background model to a soft, decontaminated cut-out.

* :func:`segment` floods the background from the image border over the pixels that are
  within the noise threshold of the background surface. Whatever is not reached is the
  subject, so regions of background colour enclosed by the subject are kept. Specks that
  never rise clearly above the noise are dropped.
* :func:`soft_edge` estimates fractional alpha on the subject's outer edge by projecting
  each edge pixel onto the line between the local background colour and the nearby
  subject colour (the compositing equation ``I = a*F + (1-a)*B``), then un-premultiplies
  the background out of the pixel colour so no background-coloured halo remains.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._background import flood_from_border

EDGE_RADIUS = 2  # pixels inside the subject's outline treated as the soft edge band
_K3 = np.ones((3, 3), np.uint8)


def segment(dist: np.ndarray, threshold: float, too_smooth: np.ndarray | None = None) -> np.ndarray:
    """Subject mask (bool): everything not connected to the border through background.

    ``too_smooth`` marks pixels that cannot be background on a noisy backdrop because
    they lack its noise; they block the flood like pixels of a different colour.
    """
    weak = not_backdrop(dist, threshold, too_smooth)
    return prune(~flood_from_border(~weak), dist, threshold, too_smooth)


def not_backdrop(
    dist: np.ndarray, threshold: float, too_smooth: np.ndarray | None = None
) -> np.ndarray:
    """Pixels that cannot be backdrop: too far from its surface, or too smooth for it."""
    weak = dist >= threshold
    if too_smooth is not None:
        weak |= too_smooth
    return weak


def prune(
    fg: np.ndarray, dist: np.ndarray, threshold: float, too_smooth: np.ndarray | None = None
) -> np.ndarray:
    """``fg`` without pieces that never rise clearly above the noise (or are tiny)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 1:
        return fg
    strong = dist >= 1.5 * threshold
    if too_smooth is not None:
        strong = strong | too_smooth
    has_strong = np.bincount(labels[strong], minlength=n) >= 2
    keep = has_strong & (stats[:, cv2.CC_STAT_AREA] >= 3)
    keep[0] = False
    return keep[labels]


def bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Rows and columns of the non-empty ``mask``'s bounding box, grown by ``margin``."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(0, ys[0] - margin), min(h, ys[-1] + margin + 1)),
        slice(max(0, xs[0] - margin), min(w, xs[-1] + margin + 1)),
    )


def foreground_colours(
    rgb: np.ndarray, fg: np.ndarray, band: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearby pure-subject colour for every band pixel, and whether one was found.

    The colour is the mean of the subject pixels a little further inside the outline;
    thin strokes with no such pixels fall back to any pixel one step inside.
    """
    ys, xs = np.nonzero(band)
    colours = np.zeros((ys.size, 3), np.float32)
    found = np.zeros(ys.size, bool)
    for erode_by, k in ((EDGE_RADIUS + 1, 2 * EDGE_RADIUS + 5), (1, 5)):
        todo = ~found
        if not todo.any():
            break
        # Work inside the bounding box of the pixels still to do (plus the kernel).
        sub = np.zeros_like(band)
        sub[ys[todo], xs[todo]] = True
        rows, cols = bounding_box(sub, k + erode_by + 1)
        fg8 = fg[rows, cols].astype(np.uint8)
        sure = cv2.erode(fg8, _K3, iterations=erode_by, borderValue=1)
        masked = cv2.bitwise_and(rgb[rows, cols], rgb[rows, cols], mask=sure)
        weight = cv2.boxFilter(sure, cv2.CV_32F, (k, k), normalize=False)
        acc = cv2.boxFilter(masked, cv2.CV_32F, (k, k), normalize=False)
        py, px = ys[todo] - rows.start, xs[todo] - cols.start
        wv = weight[py, px]
        ok = wv > 0.5
        idx = np.flatnonzero(todo)[ok]
        colours[idx] = acc[py[ok], px[ok]] / wv[ok, None]
        found[idx] = True
    return colours, found


def soft_edge(
    rgb: np.ndarray, fg: np.ndarray, surface: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha (float32 0..1) and decontaminated RGB (uint8) for a subject mask."""
    fg8 = fg.view(np.uint8)
    alpha = fg8.astype(np.float32)
    out = rgb.copy()
    inner = cv2.erode(fg8, _K3, iterations=EDGE_RADIUS)
    band = fg & (inner == 0)
    if not band.any():
        return alpha, out
    ys, xs = np.nonzero(band)
    pix = rgb[ys, xs].astype(np.float32)
    bgc = surface[ys, xs].astype(np.float32)
    fgc, found = foreground_colours(rgb, fg, band)

    span = fgc - bgc
    span2 = np.einsum("ij,ij->i", span, span)
    # Only trust the projection where subject and background colours are well apart.
    usable = found & (span2 >= max(2.0 * threshold, 24.0) ** 2)
    a = np.ones(ys.size, np.float32)
    proj = np.einsum("ij,ij->i", pix - bgc, span) / np.maximum(span2, 1e-6)
    a[usable] = np.clip(proj[usable], 0.0, 1.0)

    # Un-premultiply the background: C = B + (I - B) / a, blended towards the nearby
    # subject colour where the coverage is too small for the division to be stable.
    safe = np.maximum(a, 0.02)[:, None]
    decont = bgc + (pix - bgc) / safe
    w = np.clip((a - 0.05) / 0.3, 0.0, 1.0)[:, None]
    fallback = np.where(found[:, None], fgc, decont)
    colour = np.where(usable[:, None], w * decont + (1.0 - w) * fallback, pix)
    alpha[ys, xs] = a
    out[ys, xs] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    return alpha, out


def estimate_local_background(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Smooth background colour estimate from the clearly transparent pixels.

    Used to decontaminate the edges of a mask that came from a learned model, where no
    border model exists.
    """
    h, w = alpha.shape
    scale = min(1.0, 128.0 / max(h, w))
    sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    a_small = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA)
    m = (a_small < 0.02).astype(np.float32)
    if m.sum() < 4:
        med = np.median(rgb.reshape(-1, 3), axis=0).astype(np.float32)
        return np.broadcast_to(med, rgb.shape).astype(np.float32)
    sigma = max(sw, sh) / 16.0
    acc = cv2.GaussianBlur(small * m[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(m, (0, 0), sigma)
    mean = (small * m[..., None]).sum(axis=(0, 1)) / m.sum()
    eps = 1e-3
    surface = (acc + eps * mean) / (weight[..., None] + eps)
    return cv2.resize(surface, (w, h), interpolation=cv2.INTER_LINEAR)


def decontaminate(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Remove a known background colour from semi-transparent pixels (model masks)."""
    out = rgb.copy()
    edge = (alpha > 0.02) & (alpha < 0.98)
    if not edge.any():
        return out
    ys, xs = np.nonzero(edge)
    a = alpha[ys, xs][:, None]
    pix = rgb[ys, xs].astype(np.float32)
    bgc = background[ys, xs].astype(np.float32)
    decont = bgc + (pix - bgc) / np.maximum(a, 0.1)
    out[ys, xs] = np.clip(decont + 0.5, 0, 255).astype(np.uint8)
    return out
