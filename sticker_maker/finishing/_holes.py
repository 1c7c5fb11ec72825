"""Holes: regions of backdrop colour that the subject encloses, cut out or kept.

The border flood in :func:`~._matting.segment` reaches only the backdrop outside the
subject, so the inside of a wheel, a ring, a cup's handle or the letter "o" stays filled.
Whether such an enclosed region is backdrop seen through the subject or a part of the
subject that happens to have the backdrop's colour (eye whites, white fur, a white shirt
on white) is decided here, per region, from evidence:

* **colour continuity**: the region's mean colour must match the backdrop surface
  extrapolated under the subject, within the outer backdrop's own (median) deviation
  from that surface. Off-white artwork on white (a 1-2 level difference) stays. On a
  noisy backdrop, where the surface under a large subject is only interpolated, the
  region's colours must lie within the range the backdrop spans around the subject.
* **noise continuity** (noisy backdrops): backdrop seen through a hole carries the same
  pixel noise as the backdrop outside; artwork drawn in the backdrop's colour is smooth.
  The ratio of the region's high-pass energy to the outer backdrop's decides.
* **shape and size** (clean backdrops, where colour and noise cannot tell): a thin,
  elongated region (a white stripe, a highlight along an edge) is artwork; so is a speck
  far smaller than its sticker, and a region that is most of its sticker (the white fill
  of a balloon drawn with a dark outline). Holes are openings.
* **edge contrast**: the ring of subject around a hole must stand clearly above the
  backdrop's own spread (a faint sketch line does not separate two backdrops).
* **one piece**: a sticker is cut as one piece, so a region that would set colour
  artwork loose (a clock's hands on its white face) is artwork. Line art (one colour,
  thin outlines) is exempt: its details float inside outlines by nature.

Pure white art with an opening's shape on a pure white, noise-free backdrop cannot be
told from a hole by any of these: ``auto`` cuts it, ``keep`` is the answer for such art.

``holes="keep"`` fills every enclosed region (the classic die-cut), ``"cut"`` removes every
enclosed region of backdrop colour (and noise), ``"auto"`` (default) weighs the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._background import BackgroundModel
from ._errors import bad_choice
from ._matting import bounding_box

HOLES = ("auto", "keep", "cut")
#: Smallest enclosed region (px) considered at all; smaller ones stay filled.
MIN_AREA = 12
#: In auto mode on a clean backdrop, a region smaller than this share of the subject is
#: a detail (a glint, a dot), not an opening.
MIN_SHARE = 0.001
#: Largest share of its piece (the filled sticker) that a region may take and still be
#: a hole rather than the piece's own fill.
MAX_SHARE = 0.75
#: Smallest piece (share of the sticker it belongs to) that counts as an island a hole
#: would set loose; smaller ones are specks.
MIN_ISLAND = 0.0002
#: Line art: at least this share of a piece's pixels within this distance (8-bit RGB)
#: of its mean colour.
MONO_SHARE = 0.9
MONO_DISTANCE = 40.0
#: Isoperimetric ratio (perimeter^2 / (4 pi area), 1 for a disc) above which a region is
#: a stripe or a stroke rather than an opening. Wheel sectors and handles stay far below.
MAX_ELONGATION = 5.5
#: Noise-energy ratio (region / outer backdrop) that still counts as "the same noise".
NOISE_RATIO = (0.45, 2.5)
#: ...unless it is also wide: a mean width above this share of the subject's scale
#: (square root of its area) is an opening of an elongated shape (a key's outline).
THIN_WIDTH = 0.05
#: Colour tolerance on a clean backdrop, in 8-bit levels, on top of the outer backdrop's
#: own deviation from the fitted surface.
CLEAN_TOLERANCE = 0.35
#: On a noisy backdrop, enclosed regions may lie this many noise thresholds from the
#: surface interpolated under the subject (blotches), inside the backdrop's colour range.
LOOSE = 3.0
#: Width in px of the band of outer backdrop that serves as the reference.
OUTER_BAND = 12
#: Noise sigma from which the noise test applies.
NOISY_SIGMA = 1.5
_K3 = np.ones((3, 3), np.uint8)


@dataclass
class HoleReport:
    """What :func:`find_holes` decided, for the notes."""

    candidates: int = 0
    cut: int = 0
    cut_px: int = 0
    kept_px: int = 0

    def note(self, mode: str) -> str | None:
        if mode == "keep" or not self.candidates:
            return None
        if not self.cut:
            return (
                f"holes {mode}: kept {self.candidates} enclosed region(s) of backdrop colour "
                "as part of the subject"
            )
        return (
            f"holes {mode}: cut {self.cut} of {self.candidates} enclosed region(s) of backdrop "
            f"colour ({self.cut_px} px), kept {self.candidates - self.cut} ({self.kept_px} px)"
        )


def check_holes(value: object) -> str:
    """``value`` if it is a known holes mode, else a :class:`FinishingError`."""
    if value not in HOLES:
        raise bad_choice("holes", value, HOLES)
    return value  # type: ignore[return-value]


def _high_pass_energy(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel squared difference of the luma from its 3x3 mean."""
    f = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    diff = f - cv2.blur(f, (3, 3))
    return diff * diff


def _mean_deviation(
    work: np.ndarray, surface: np.ndarray, labels: np.ndarray, n: int, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per label: length of the mean colour deviation from the surface, and pixel count."""
    at = labels[where]
    dev = work[where].astype(np.float32) - surface[where]
    count = np.bincount(at, minlength=n)
    sums = np.stack([np.bincount(at, weights=dev[:, c], minlength=n) for c in range(3)], axis=1)
    return np.linalg.norm(sums / np.maximum(count, 1)[:, None], axis=1), count


def _square(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))


def _per_label(labels: np.ndarray, n: int, values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over the pixels of each label where ``where`` holds."""
    return np.bincount(labels[where], weights=values[where], minlength=n)


def _specks(mask: np.ndarray) -> np.ndarray:
    """Pieces of ``mask`` under :data:`MIN_AREA` px (noise spikes inside a hole)."""
    n, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    small = np.bincount(labels.ravel(), minlength=n) < MIN_AREA
    small[0] = False
    return small[labels]


def _in_range(
    work: np.ndarray, fg: np.ndarray, dist: np.ndarray, model: BackgroundModel
) -> np.ndarray:
    """Pixels whose colour lies within the range the backdrop spans around the subject.

    On a smooth backdrop (a gradient, soft blotches) the colour at any point inside the
    subject lies between the extremes on a loop around it, give or take the blotches: a
    noise threshold either side.
    """
    fg8 = fg.view(np.uint8)
    band = cv2.dilate(fg8, _square(OUTER_BAND)).view(bool) & ~fg
    band &= dist < model.threshold
    if band.sum() < 64:
        return np.ones(fg.shape, bool)
    values = work[band].astype(np.float32)
    lo = np.percentile(values, 0.5, axis=0) - model.threshold
    hi = np.percentile(values, 99.5, axis=0) + model.threshold
    inside = cv2.inRange(work, np.floor(lo).astype(np.float64), np.ceil(hi).astype(np.float64))
    return inside.view(bool)


def find_holes(
    rgb: np.ndarray,
    model: BackgroundModel,
    dist: np.ndarray,
    fg: np.ndarray,
    mode: str = "auto",
) -> tuple[np.ndarray, HoleReport]:
    """Mask (bool) of enclosed regions to cut from the subject ``fg``, and a report.

    ``model`` and ``dist`` come from :func:`~._background.estimate_background`. Enclosed
    regions are the pixels of ``fg`` within the noise threshold of the backdrop (within
    :data:`LOOSE` thresholds on a noisy backdrop, where the surface under the subject is
    only interpolated) that are not too smooth for it.
    """
    report = HoleReport()
    cut = np.zeros(fg.shape, bool)
    if mode == "keep" or not fg.any():
        return cut, report
    # Work inside the subject's bounding box (plus room for the outer reference band).
    rows, cols = bounding_box(fg, OUTER_BAND + 3)
    sub_fg = fg[rows, cols]
    sub_dist = dist[rows, cols]
    noisy = model.noise >= NOISY_SIGMA
    work = model.work if model.work is not None else rgb
    sub_work = work[rows, cols]
    if noisy:
        weak = (sub_dist >= LOOSE * model.threshold) | ~_in_range(sub_work, sub_fg, sub_dist, model)
    else:
        weak = sub_dist >= model.threshold
    if model.too_smooth is not None:
        weak |= model.too_smooth[rows, cols]
    cand = sub_fg & ~weak
    if noisy:
        cand |= _specks(sub_fg & weak)
    n, labels = cv2.connectedComponents(cand.view(np.uint8), connectivity=4)
    if n <= 1:
        return cut, report
    area = np.bincount(labels.ravel(), minlength=n)
    area[0] = 0
    big = area >= MIN_AREA
    big[0] = False
    report.candidates = int(big.sum())
    if not report.candidates:
        return cut, report
    if mode == "cut":
        accept = big
    else:
        region = _Region(labels, n, area, big, sub_fg, weak | (sub_dist >= model.threshold))
        accept = _auto(
            rgb[rows, cols],
            sub_work,
            sub_dist,
            model.surface[rows, cols],
            model.noise,
            model.threshold,
            region,
        )
        if not noisy:  # where noise already tells backdrop from artwork, it decides
            accept &= ~_holding_islands(rgb[rows, cols], sub_fg, labels, n, accept)
    cut[rows, cols] = accept[labels]
    report.cut = int(accept.sum())
    report.cut_px = int(area[accept].sum())
    report.kept_px = int(area[big & ~accept].sum())
    return cut, report


def _monochrome(rgb: np.ndarray, solid: np.ndarray, pieces: np.ndarray, n: int) -> np.ndarray:
    """Per piece: whether its solid pixels are nearly all one colour (line art, a logo)."""
    core = cv2.erode(solid.view(np.uint8), _K3).view(bool)
    at = pieces[core]
    pix = rgb[core].astype(np.float32)
    count = np.maximum(np.bincount(at, minlength=n), 1)
    mean = np.stack([np.bincount(at, weights=pix[:, c], minlength=n) for c in range(3)], 1)
    mean /= count[:, None]
    near = np.linalg.norm(pix - mean[at], axis=1) <= MONO_DISTANCE
    return np.bincount(at, weights=near, minlength=n) / count >= MONO_SHARE


def _holding_islands(
    rgb: np.ndarray, fg: np.ndarray, labels: np.ndarray, n: int, accept: np.ndarray
) -> np.ndarray:
    """Accepted labels that would leave a piece of colour artwork floating inside them.

    A sticker is one piece: what a hole encloses (a clock's hands on its white face, the
    dot of a star drawn white on a tile) would fall out of it, so in colour artwork a
    region that encloses artwork is itself artwork. Line art (one colour) is exempt: its
    details float inside outlines by nature (the dot in a key's head). Pieces under
    :data:`MIN_ISLAND` of their sticker are specks.
    """
    cut = accept[labels]
    if not cut.any():
        return np.zeros(n, bool)
    before_n, before = cv2.connectedComponents(fg.view(np.uint8), connectivity=8)
    after_n, after = cv2.connectedComponents((fg & ~cut).view(np.uint8), connectivity=8)
    if after_n <= before_n:
        return np.zeros(n, bool)
    # each piece left after cutting, and the piece of the subject it belonged to
    size = np.bincount(after.ravel(), minlength=after_n)
    parent = np.zeros(after_n, np.int64)
    parent[after.ravel()] = before.ravel()
    largest = np.zeros(before_n, np.int64)
    np.maximum.at(largest, parent[1:], size[1:])
    whole = np.bincount(before.ravel(), minlength=before_n)
    island = (size < largest[parent]) & (size >= MIN_ISLAND * whole[parent])
    island &= size >= MIN_AREA
    island &= ~_monochrome(rgb, fg & ~cut, before, before_n)[parent]
    island[0] = False
    if not island.any():
        return np.zeros(n, bool)
    # the accepted regions that touch an island hold it
    near = cv2.dilate(island[after].view(np.uint8), _square(1)).view(bool)
    holding = np.zeros(n, bool)
    holding[np.unique(labels[near & cut])] = True
    holding[0] = False
    return holding


@dataclass
class _Region:
    labels: np.ndarray  # candidate labels (0: not a candidate)
    n: int
    area: np.ndarray
    big: np.ndarray  # labels large enough to judge
    fg: np.ndarray
    weak: np.ndarray  # not backdrop at the strict threshold


def _auto(
    rgb: np.ndarray,
    work: np.ndarray,
    dist: np.ndarray,
    surface: np.ndarray,
    noise: float,
    threshold: float,
    region: _Region,
) -> np.ndarray:
    """Per-label verdict (bool, True = backdrop seen through the subject)."""
    labels, n, area, big, fg, weak = (
        region.labels,
        region.n,
        region.area,
        region.big,
        region.fg,
        region.weak,
    )
    cand = labels > 0
    # the size of the piece of the subject (one sticker of a sheet) each region lies in
    pieces_n, pieces = cv2.connectedComponents(fg.view(np.uint8), connectivity=8)
    piece_area = np.bincount(pieces.ravel(), minlength=pieces_n).astype(np.float64)
    piece_of = np.zeros(n, np.int64)
    piece_of[labels.ravel()] = pieces.ravel()
    subject = np.maximum(piece_area[piece_of], 1.0)
    # The outer backdrop near the subject, clear of its anti-aliased rim: the reference
    # for colour and noise.
    fg8 = fg.view(np.uint8)
    near = cv2.dilate(fg8, _square(OUTER_BAND)).view(bool)
    outer = near & ~cv2.dilate(fg8, _square(2)).view(bool) & ~weak
    if outer.sum() < 64:
        outer = ~fg & ~weak
    if outer.sum() < 16:
        return np.zeros(n, bool)
    noisy = noise >= NOISY_SIGMA

    # 1. Colour continuity: mean deviation from the surface, away from the anti-aliased
    # rim (all of a region's pixels when it is too thin to have a core). On a noisy
    # backdrop the surface under a large subject is only interpolated, so the colour test
    # there is the backdrop's colour range, which the candidates were chosen inside.
    core = cv2.erode(cand.view(np.uint8), _K3).view(bool)
    outer_spread = float(np.median(dist[outer]))
    if noisy:
        same_colour = np.ones(n, bool)
        use = core
        count = np.maximum(np.bincount(labels[core], minlength=n), 1)
    else:
        bias, count = _mean_deviation(work, surface, labels, n, core)
        thin = count < 4
        if thin.any():
            bias_all, _ = _mean_deviation(work, surface, labels, n, cand)
            bias = np.where(thin, bias_all, bias)
        # the outer backdrop's own (robust) deviation from the fitted surface
        outer_dev = work[outer].astype(np.float32) - surface[outer]
        outer_bias = float(np.linalg.norm(np.median(outer_dev, axis=0)))
        tol = CLEAN_TOLERANCE + 2.0 * outer_bias + 0.5 * outer_spread
        same_colour = bias <= tol

    # 2. Noise continuity on noisy backdrops.
    if noisy:
        energy = _high_pass_energy(rgb)
        ref = float(energy[outer].mean()) + 1e-6
        region = _per_label(labels, n, energy, use) / count / ref
        same_noise = (region >= NOISE_RATIO[0]) & (region <= NOISE_RATIO[1])
    else:
        same_noise = np.ones(n, bool)

    # 3. Shape and size (what is left to go on when the backdrop is clean).
    edge = cand & ~cv2.erode(cand.view(np.uint8), _K3, borderValue=1).view(bool)
    perimeter = np.bincount(labels[edge], minlength=n).astype(np.float64)
    elongation = perimeter**2 / (4.0 * np.pi * np.maximum(area, 1))
    share = area / subject
    # mean width of an elongated region (2 area / perimeter) against the subject's scale
    width = 2.0 * area / np.maximum(perimeter, 1.0)
    # (the scale is the largest piece's: a subject cut in two by backdrop is still one)
    stripe = (elongation > MAX_ELONGATION) & (width < THIN_WIDTH * np.sqrt(piece_area.max()))
    compact = ~stripe | noisy
    sizeable = share >= (MIN_SHARE * 0.25 if noisy else MIN_SHARE)
    # a region that is most of its piece is the piece's fill (a white balloon drawn with
    # a dark outline), not a hole in it
    sizeable &= share <= MAX_SHARE

    # 4. Edge contrast and outline thickness: the ring of subject around each region.
    if n < 65536:
        ring_labels = cv2.dilate(labels.astype(np.uint16), _square(2)).astype(np.int32)
    else:
        ring_labels = cv2.dilate(labels.astype(np.float32), _square(2)).astype(np.int32)
    ring_ok = fg & ~cand & (ring_labels > 0)
    contrast = _per_label(ring_labels, n, dist, ring_ok) / np.maximum(
        np.bincount(ring_labels[ring_ok], minlength=n), 1
    )
    # the outline must stand clearly above the backdrop's own spread
    outlined = contrast >= 2.0 * (outer_spread + CLEAN_TOLERANCE)

    return big & same_colour & same_noise & compact & sizeable & outlined
