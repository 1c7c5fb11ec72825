"""Die-cut finishing: a smooth white border, an optional drop shadow, trimming."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ._errors import FinishingError
from ._holes import check_holes
from ._imageio import ensure_image, from_rgba, rgba_array

BORDER_FRACTION = 0.025  # default border: share of the content's longer side
PADDING_FRACTION = 0.01  # default padding around a bordered sticker
SHADOW_OPACITY = 0.35


def _check_int(value: object, argument: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise FinishingError(f"{argument} must be a whole number of pixels, got {value!r}")
    if value < minimum:
        raise FinishingError(f"{argument}={value} is invalid; it must be >= {minimum}")
    return int(value)


def content_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), exclusive end, of the non-transparent pixels."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def default_border(width: int, height: int) -> int:
    """Default border width for content of this size: ~2.5 % of the longer side."""
    return max(2, round(BORDER_FRACTION * max(width, height)))


def _trim_array(arr: np.ndarray, padding: int) -> np.ndarray:
    box = content_box(arr[..., 3])
    if box is None:
        raise FinishingError("rgba: the image is fully transparent; there is nothing to trim")
    x0, y0, x1, y1 = box
    crop = arr[y0:y1, x0:x1]
    crop = cv2.bitwise_and(crop, crop, mask=crop[..., 3])  # no colour under alpha 0
    if padding:
        crop = cv2.copyMakeBorder(
            crop, padding, padding, padding, padding, cv2.BORDER_CONSTANT, value=(0, 0, 0, 0)
        )
    return np.ascontiguousarray(crop)


def trim(rgba: Image.Image, padding: int = 0) -> Image.Image:
    """Crop ``rgba`` to its non-transparent pixels, then add ``padding`` px on every side.

    Fully transparent pixels come out as (0, 0, 0, 0). Raises :class:`FinishingError`
    for a fully transparent image.
    """
    pad = _check_int(padding, "padding")
    return from_rgba(_trim_array(rgba_array(ensure_image(rgba, "rgba")), pad))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool) with every region not connected to the image border filled."""
    outside = ~mask
    n, labels = cv2.connectedComponents(outside.astype(np.uint8), connectivity=4)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    reach = np.zeros(n, bool)
    reach[np.unique(edge)] = True
    reach[0] = False
    return mask | ~reach[labels]


def border_shape(alpha: np.ndarray, border: int, holes: str = "auto") -> np.ndarray:
    """Soft (float 0..1) die-cut shape: the subject grown by ``border`` px.

    Notches narrower than about two border widths are closed first, so the cut line
    stays smooth. Holes (transparent regions the subject encloses) are filled when
    ``holes="keep"``, the classic die cut with one outer contour; otherwise those wider
    than two border widths stay open, ringed by the border like the outside (narrower
    ones close: no border strip inside a hole it would fill).
    """
    solid = (alpha >= 0.5).astype(np.uint8)
    if not solid.any():
        solid = (alpha > 0).astype(np.uint8)
    # Morphological closing by ``border`` (grow, then shrink back), then grow by it.
    outside = cv2.distanceTransform(1 - solid, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    grown = (outside <= border).astype(np.uint8)
    inside = cv2.distanceTransform(grown, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    closed = (inside > border).astype(np.uint8) | solid
    if holes == "keep":
        closed = fill_holes(closed.astype(bool)).astype(np.uint8)
    dist = cv2.distanceTransform(1 - closed, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    shape = np.clip(border + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    shape = cv2.GaussianBlur(shape, (0, 0), 0.6)
    shape[closed.astype(bool)] = 1.0
    return np.maximum(shape, alpha)


def _over(
    top_rgb: np.ndarray, top_a: np.ndarray, bottom_rgb: np.ndarray, bottom_a: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Porter-Duff "over" on straight (non-premultiplied) float colours."""
    out_a = top_a + bottom_a * (1.0 - top_a)
    num = top_rgb * top_a[..., None] + bottom_rgb * (bottom_a * (1.0 - top_a))[..., None]
    out_rgb = num / np.maximum(out_a, 1e-6)[..., None]
    return out_rgb, out_a


def die_cut(
    rgba: Image.Image,
    *,
    border: int | None = None,
    shadow: bool = False,
    padding: int | None = None,
    colour: tuple[int, int, int] = (255, 255, 255),
    keep_canvas: bool = False,
    holes: str = "auto",
) -> Image.Image:
    """Finish a cut-out as a die-cut sticker.

    * ``border``: width in px of the smooth border around the subject; default ~2.5 % of
      the content's longer side; ``0`` for the bare cut-out.
    * ``shadow``: add a soft drop shadow below the sticker.
    * ``padding``: transparent margin on every side after trimming to the content;
      default ~1 % of the longer side (0 for a bare cut-out without shadow).
    * ``colour``: border colour (white).
    * ``keep_canvas``: keep the input's size and position instead of trimming (the
      border and shadow are clipped at the canvas edge).
    * ``holes``: ``"keep"`` fills the cut-out's holes (one outer contour); ``"auto"`` and
      ``"cut"`` (default ``"auto"``) keep the holes the cut-out has, with the border
      around their rims, and close those narrower than two border widths.
    """
    check_holes(holes)
    arr = rgba_array(ensure_image(rgba, "rgba"))
    box = content_box(arr[..., 3])
    if box is None:
        raise FinishingError("rgba: the image is fully transparent; there is nothing to cut")
    x0, y0, x1, y1 = box
    longer = max(x1 - x0, y1 - y0)
    size = default_border(x1 - x0, y1 - y0) if border is None else _check_int(border, "border")
    if padding is None:
        bare = size == 0 and not shadow
        pad = 0 if bare else max(2, round(PADDING_FRACTION * longer))
    else:
        pad = _check_int(padding, "padding")
    if (
        not isinstance(colour, tuple | list)
        or len(colour) != 3
        or not all(isinstance(c, int) and 0 <= c <= 255 for c in colour)
    ):
        raise FinishingError(f"colour={colour!r} must be three integers 0-255 (R, G, B)")

    offset = max(1, round(0.012 * longer)) if shadow else 0
    blur = max(1.0, 0.012 * longer) if shadow else 0.0
    # Room for the closing (2x border) plus the shadow, so nothing touches the edge.
    margin = 2 * size + 3 + offset + int(3 * blur + 1)
    work = cv2.copyMakeBorder(
        arr[y0:y1, x0:x1], margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0
    )
    rgb = work[..., :3].astype(np.float32)
    alpha = work[..., 3].astype(np.float32) / 255.0

    if size > 0:
        shape = border_shape(alpha, size, holes)
        base = np.broadcast_to(np.asarray(colour, np.float32), rgb.shape)
        rgb, alpha = _over(rgb, alpha, base, shape)
    if shadow:
        m = np.float32([[1, 0, offset * 0.5], [0, 1, offset]])
        moved = cv2.warpAffine(alpha, m, (alpha.shape[1], alpha.shape[0]))
        shade = cv2.GaussianBlur(moved, (0, 0), blur) * SHADOW_OPACITY
        rgb, alpha = _over(rgb, alpha, np.zeros_like(rgb), shade)

    out = np.dstack([np.clip(rgb + 0.5, 0, 255), np.clip(alpha * 255.0 + 0.5, 0, 255)]).astype(
        np.uint8
    )
    out = cv2.bitwise_and(out, out, mask=out[..., 3])  # fully transparent: (0, 0, 0, 0)
    if keep_canvas:
        # Paste back where the content came from, clipped to the original canvas.
        h, w = arr.shape[:2]
        full = np.zeros_like(arr)
        ox, oy = x0 - margin, y0 - margin
        cx0, cy0 = max(0, ox), max(0, oy)
        cx1, cy1 = min(w, ox + out.shape[1]), min(h, oy + out.shape[0])
        full[cy0:cy1, cx0:cx1] = out[cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox]
        return from_rgba(full)
    return from_rgba(_trim_array(out, pad))
