"""Split a sticker sheet into one image per sticker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ._cutout import remove_background
from ._diecut import _check_int, die_cut
from ._imageio import ensure_image, from_rgba, rgba_array

# Pieces closer than this share of the typical sticker size belong to one sticker.
MERGE_GAP_FRACTION = 0.1
# A piece too small to be a sticker joins the nearest sticker within this share.
ATTACH_GAP_FRACTION = 0.3
# Default smallest sticker, as a share of the sheet's area (smaller groups are specks).
MIN_AREA_FRACTION = 0.0005


@dataclass
class SheetPiece:
    """One sticker found on a sheet: its pixels cropped out, and where they were."""

    rgba: np.ndarray  # HxWx4 crop of the sheet, alpha limited to this sticker
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) on the sheet
    area: int  # opaque pixels


def _pair_gaps(owner: np.ndarray, dist: np.ndarray) -> dict[tuple[int, int], float]:
    """Smallest gap between every two components whose Voronoi cells touch."""
    keys: list[np.ndarray] = []
    gaps: list[np.ndarray] = []
    for a, b, da, db in (
        (owner[:, :-1], owner[:, 1:], dist[:, :-1], dist[:, 1:]),
        (owner[:-1], owner[1:], dist[:-1], dist[1:]),
    ):
        sel = (a != b) & (a > 0) & (b > 0)
        lo = np.minimum(a[sel], b[sel]).astype(np.int64)
        hi = np.maximum(a[sel], b[sel]).astype(np.int64)
        keys.append(lo * (int(owner.max()) + 1) + hi)
        gaps.append(da[sel] + db[sel])
    key = np.concatenate(keys)
    gap = np.concatenate(gaps)
    if key.size == 0:
        return {}
    order = np.lexsort((gap, key))
    key, gap = key[order], gap[order]
    first = np.ones(key.size, bool)
    first[1:] = key[1:] != key[:-1]
    base = int(owner.max()) + 1
    pairs = zip(key[first], gap[first], strict=True)
    return {(int(k // base), int(k % base)): float(g) for k, g in pairs}


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _reading_order(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """Indices of ``boxes`` in rows top-to-bottom, then left-to-right within a row.

    A row starts at the highest remaining box (by centre) and grows by every box that
    has at least half of its height inside the row's vertical span (or covers half of
    that span), until no more join.
    """
    remaining = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    order: list[int] = []
    while remaining:
        top, bottom = boxes[remaining[0]][1], boxes[remaining[0]][3]
        row = [remaining.pop(0)]
        grew = True
        while grew:
            grew = False
            for i in list(remaining):
                y0, y1 = boxes[i][1], boxes[i][3]
                overlap = min(y1, bottom) - max(y0, top)
                if overlap >= 0.5 * min(y1 - y0, bottom - top):
                    row.append(i)
                    remaining.remove(i)
                    top, bottom = min(top, y0), max(bottom, y1)
                    grew = True
        order.extend(sorted(row, key=lambda i: (boxes[i][0] + boxes[i][2]) / 2))
    return order


def locate_stickers(rgba: np.ndarray, *, min_area: int | None = None) -> list[SheetPiece]:
    """Group the opaque pieces of a transparent sheet into stickers, in reading order.

    Pieces whose gap is under a tenth of the typical sticker size (the median extent of
    the sheet's sizeable pieces) are one sticker. Pieces smaller than ``min_area`` px
    never link two stickers: each joins the nearest sticker within 30 % of the typical
    size (a bubble's dots, sparkles) or is dropped as a speck.
    """
    h, w = rgba.shape[:2]
    alpha = rgba[..., 3]
    mask = (alpha >= 128).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return []
    area = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    limit = max(64, round(MIN_AREA_FRACTION * h * w)) if min_area is None else min_area
    tiny = area < limit
    tiny[0] = True
    big = area >= 0.1 * area[1:].max()
    big[0] = False
    typical = float(np.median(extent[big]))
    max_gap = MERGE_GAP_FRACTION * typical
    attach_gap = ATTACH_GAP_FRACTION * typical

    dist, vor = cv2.distanceTransformWithLabels(
        1 - mask, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_CCOMP
    )
    comp_of = np.zeros(int(vor.max()) + 1, np.int32)
    comp_of[vor[mask > 0]] = labels[mask > 0]
    owner = comp_of[vor]

    parent = list(range(n))
    # For each small piece: its nearest sizeable neighbour, else its nearest small one.
    near_big: dict[int, tuple[float, int]] = {}
    near_small: dict[int, tuple[float, int]] = {}
    for (a, b), gap in sorted(_pair_gaps(owner, dist).items(), key=lambda kv: kv[1]):
        if gap > attach_gap:
            continue
        for speck, other in ((a, b), (b, a)):
            if tiny[speck]:
                table = near_small if tiny[other] else near_big
                table.setdefault(speck, (gap, other))
        if tiny[a] or tiny[b] or gap > max_gap:
            continue
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    group = np.array([_find(parent, i) for i in range(n)], np.int32)
    group[tiny] = 0
    # Small pieces never link two stickers; each follows its chain of nearest pieces to a
    # sticker (a bubble's dots lead to the bubble), or is dropped as a speck.
    for speck in np.flatnonzero(tiny[1:]) + 1:
        seen = {int(speck)}
        cur = int(speck)
        while tiny[cur]:
            nxt = near_big.get(cur, near_small.get(cur, (0.0, 0)))[1]
            if nxt == 0 or nxt in seen:
                break
            seen.add(nxt)
            cur = nxt
        if not tiny[cur]:
            group[speck] = group[cur]

    group_area = np.bincount(group, weights=area, minlength=n)
    kept = [g for g in np.unique(group) if g != 0 and group_area[g] >= limit]
    pixel_group = group[owner]
    pieces: list[SheetPiece] = []
    for g in kept:
        sel = (pixel_group == g) & (alpha > 0)
        ys, xs = np.nonzero(sel)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        crop = rgba[y0:y1, x0:x1].copy()
        crop[~sel[y0:y1, x0:x1]] = 0
        pieces.append(SheetPiece(crop, (x0, y0, x1, y1), int(group_area[g])))
    order = _reading_order([p.box for p in pieces])
    return [pieces[i] for i in order]


def has_white_rim(rgba: np.ndarray) -> bool:
    """Whether a piece is already outlined in white (a die-cut border drawn in the art)."""
    solid = (rgba[..., 3] >= 128).astype(np.uint8)
    padded = cv2.copyMakeBorder(solid, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    inner = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=3)[1:-1, 1:-1]
    rim = (solid > 0) & (inner == 0)
    if rim.sum() < 16:
        return False
    rgb = rgba[..., :3][rim].astype(np.int16)
    whiteish = (rgb.min(axis=1) >= 225) & (rgb.max(axis=1) - rgb.min(axis=1) <= 20)
    return bool(whiteish.mean() >= 0.9)


def split_sheet(
    image: Image.Image,
    *,
    border: int | None = None,
    min_area: int | None = None,
    shadow: bool = False,
    padding: int | None = None,
    method: str = "auto",
    model: str | Path | object | None = None,
) -> list[Image.Image]:
    """Split a sheet of stickers into one die-cut image per sticker, in reading order.

    ``image`` is either a sheet on a plain backdrop (its background is removed first with
    :func:`remove_background` and ``method``/``model``) or an RGBA image whose background
    is already transparent. Pieces of one sticker (a speech bubble's dots, two figures
    holding hands) stay together; specks under ``min_area`` px (default 0.05 % of the
    sheet) are dropped. Order: rows top to bottom, left to right within a row.

    Each sticker is trimmed and finished with :func:`die_cut`: ``border`` px of white
    (default ~2.5 % of its size, or none when the artwork already has a white rim; 0 for
    the bare cut-out), optional ``shadow``, ``padding``. Each image's ``info["sheet_box"]``
    holds the (x0, y0, x1, y1) box its content came from.
    """
    img = ensure_image(image)
    if min_area is not None:
        _check_int(min_area, "min_area", minimum=1)
    if border is not None:
        _check_int(border, "border")
    rgba = rgba_array(img)
    if not (rgba[..., 3] == 0).any():
        rgba = rgba_array(remove_background(img, method=method, model=model).image)
    out: list[Image.Image] = []
    for piece in locate_stickers(rgba, min_area=min_area):
        size = border
        if size is None and has_white_rim(piece.rgba):
            size = 0
        sticker = die_cut(from_rgba(piece.rgba), border=size, shadow=shadow, padding=padding)
        sticker.info["sheet_box"] = piece.box
        out.append(sticker)
    return out
