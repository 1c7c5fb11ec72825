"""Estimate a flat or smoothly varying background from the image border.

Generated stickers sit on white, on a solid colour, or on a light gradient with soft
blotches and sensor-like noise. The model here is:

* the pixel noise level, measured robustly from neighbouring-pixel differences along the
  border (so a subject touching the border does not inflate it);
* a smooth background surface: a robust quadratic fit to the border, refined by a
  normalised convolution over the pixels that flood-fill from the border as background,
  so that blotches are followed and the surface under the subject is interpolated from
  the nearest visible background;
* a distance threshold separating "background, up to noise" from "something else",
  taken from the distribution of distances over the background itself.

Everything is estimated from this image alone: no constants tied to a data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Smallest distance (in 8-bit RGB units, Euclidean) that counts as "not background" on a
# noise-free image: anti-aliased edge pixels with ~4 % coverage of a dark subject on white.
MIN_THRESHOLD = 10.0
# Above this threshold, the background is too busy for the model-free remover to be
# trusted (a textured photo rather than a flat backdrop).
MAX_FLAT_THRESHOLD = 48.0
# Share of border pixels that the smooth background model must explain for "flat".
MIN_FLAT_INLIERS = 0.6
# Largest colour step between neighbouring low-resolution pixels that still counts as a
# smoothly varying background (raised automatically for busier backdrops).
MIN_STEP = 4.0
# Noise sigma above which "far smoother than the backdrop's noise" marks the subject.
NOISE_CUE_SIGMA = 3.0
# Long side of the low-resolution working copy used to fit the background surface.
WORK_SIDE = 128


@dataclass
class BackgroundModel:
    """What the border says about the background of one image."""

    surface: np.ndarray  # HxWx3 float32: estimated background colour at every pixel
    noise: float  # per-channel pixel noise sigma of the raw image, 8-bit units
    threshold: float  # colour distance above which a pixel is not background
    inlier_share: float  # share of border pixels within ``threshold`` of the surface
    colour: tuple[int, int, int]  # median border colour
    varying: bool  # whether the surface varies (a gradient) rather than one colour
    # On a noisy backdrop: pixels whose neighbourhood is far smoother than the noise
    # allows, which therefore cannot be background (None when the backdrop is clean).
    too_smooth: np.ndarray | None = None
    # The image the distances were measured on (denoised when the backdrop is noisy).
    work: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def flat(self) -> bool:
        """Whether the model-free remover can be trusted on this background."""
        return self.threshold <= MAX_FLAT_THRESHOLD and self.inlier_share >= MIN_FLAT_INLIERS


def ring_width(height: int, width: int) -> int:
    """Width in pixels of the border ring used for statistics."""
    return max(2, min(height, width) // 100)


def ring_mask(height: int, width: int, rw: int) -> np.ndarray:
    """Boolean mask of the outer ``rw`` pixels of an image."""
    mask = np.zeros((height, width), dtype=bool)
    mask[:rw] = True
    mask[-rw:] = True
    mask[:, :rw] = True
    mask[:, -rw:] = True
    return mask


def estimate_noise(rgb: np.ndarray) -> float:
    """Robust per-channel noise sigma from neighbouring-pixel differences on the border."""
    h, w = rgb.shape[:2]
    rw = ring_width(h, w)
    img = rgb.astype(np.int16)
    diffs = [
        (img[:rw, 1:] - img[:rw, :-1]).reshape(-1, 3),
        (img[-rw:, 1:] - img[-rw:, :-1]).reshape(-1, 3),
        (img[1:, :rw] - img[:-1, :rw]).reshape(-1, 3),
        (img[1:, -rw:] - img[:-1, -rw:]).reshape(-1, 3),
    ]
    d = np.concatenate(diffs).astype(np.float32)
    if d.shape[0] < 8:
        return 0.0
    med = np.median(d, axis=0)
    mad = np.median(np.abs(d - med), axis=0)
    # The difference of two noisy pixels has sigma*sqrt(2); MAD*1.4826 estimates a
    # Gaussian's sigma while ignoring the large steps where a subject crosses the border.
    # On clean (flat, quantised) backdrops the MAD, and so the estimate, is 0.
    sigma = 1.4826 * mad / np.sqrt(2.0)
    return float(np.mean(sigma))


def denoise(rgb: np.ndarray, noise: float) -> np.ndarray:
    """Smooth pixel noise before measuring colour distances (no-op on clean images)."""
    if noise < 1.0:
        return rgb
    # The kernel grows with the noise so that the residual noise stays near 1-2 levels;
    # a median first removes impulsive outliers without moving edges.
    out = cv2.medianBlur(rgb, 3 if noise < 4.0 else 5)
    ksize = 3 if noise < 4.0 else 5
    return cv2.blur(out, (ksize, ksize))


def smoothness_mask(rgb: np.ndarray, noise: float) -> np.ndarray | None:
    """Pixels whose 5x5 neighbourhood varies far less than the backdrop's noise.

    A background made of a smooth surface plus noise of sigma ``noise`` cannot produce a
    noise-free patch, so such patches belong to the subject even when their colour is
    close to the background's. ``None`` when the image is not noisy enough to tell.
    """
    if noise < NOISE_CUE_SIGMA:
        return None
    mean = cv2.boxFilter(rgb, cv2.CV_32F, (5, 5))
    mean_sq = cv2.sqrBoxFilter(rgb, cv2.CV_32F, (5, 5))
    ones = np.ones((1, 3), dtype=np.float32)
    var = cv2.transform(mean_sq - mean * mean, ones).reshape(rgb.shape[:2])
    expected = 3.0 * noise * noise * (1.0 - 1.0 / 25.0)
    return var < 0.2 * expected


def _quadratic_design(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=1)


def _robust_quadratic(
    small: np.ndarray, ring: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, tuple[int, int, int]]:
    """Fit a quadratic colour surface to the ring pixels, rejecting outliers.

    Returns the surface over the whole small image, the inlier mask over ring pixels, the
    robust residual scale and the median ring colour.
    """
    h, w = small.shape[:2]
    ys, xs = np.nonzero(ring)
    cols = small[ys, xs].astype(np.float64)
    xn = xs.astype(np.float64) / max(w - 1, 1) * 2.0 - 1.0
    yn = ys.astype(np.float64) / max(h - 1, 1) * 2.0 - 1.0
    design = _quadratic_design(xn, yn)
    median = np.median(cols, axis=0)
    dist = np.linalg.norm(cols - median, axis=1)
    # Start from the pixels nearest the dominant (median) colour: the subject may touch
    # the border, but it rarely covers most of it.
    inliers = dist <= max(np.percentile(dist, 50) * 2.0, 6.0)
    scale = 0.0
    coef = np.zeros((6, 3))
    for _ in range(4):
        if inliers.sum() < 12:
            break
        coef, *_ = np.linalg.lstsq(design[inliers], cols[inliers], rcond=None)
        resid = np.linalg.norm(cols - design @ coef, axis=1)
        scale = float(1.4826 * np.median(resid[inliers])) + 1e-3
        inliers = resid <= max(3.5 * scale, 4.0)
    if not inliers.any():
        coef = np.zeros((6, 3))
        coef[0] = median
    gy, gx = np.mgrid[0:h, 0:w]
    full = _quadratic_design(
        (gx.ravel() / max(w - 1, 1) * 2.0 - 1.0).astype(np.float64),
        (gy.ravel() / max(h - 1, 1) * 2.0 - 1.0).astype(np.float64),
    )
    surface = (full @ coef).reshape(h, w, 3).astype(np.float32)
    colour = tuple(round(float(c)) for c in np.clip(median, 0, 255))
    return surface, inliers, scale, colour  # type: ignore[return-value]


def flood_from_border(candidate: np.ndarray) -> np.ndarray:
    """Pixels of ``candidate`` (bool) 4-connected to the image border."""
    n, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=4)
    if n <= 1:
        return np.zeros_like(candidate, dtype=bool)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(edge)] = True
    keep[0] = False
    return keep[labels]


def smooth_region(
    small: np.ndarray, seeds: np.ndarray, blocked: np.ndarray | None = None
) -> np.ndarray:
    """Pixels reachable from ``seeds`` without crossing a sharp colour change.

    ``small`` is a low-resolution float image; the step limit comes from the steps seen
    along the border seeds themselves, so a noisy or blotchy backdrop gets a looser one.
    """
    right = np.zeros(small.shape[:2], np.float32)
    down = np.zeros(small.shape[:2], np.float32)
    right[:, :-1] = colour_distance(small[:, 1:], small[:, :-1])
    down[:-1] = colour_distance(small[1:], small[:-1])
    step = np.maximum(right, down)
    step[:, 1:] = np.maximum(step[:, 1:], right[:, :-1])
    step[1:] = np.maximum(step[1:], down[:-1])
    seed_steps = step[seeds]
    if seed_steps.size:
        med = float(np.median(seed_steps))
        mad = float(np.median(np.abs(seed_steps - med)))
        limit = max(MIN_STEP, med + 6.0 * 1.4826 * mad)
    else:
        limit = MIN_STEP
    passable = step < limit
    if blocked is not None:
        passable &= ~blocked
    n, labels = cv2.connectedComponents(passable.astype(np.uint8), connectivity=4)
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(labels[seeds & passable])] = True
    keep[0] = False
    return keep[labels]


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean RGB distance between two HxWx3 arrays (float32 result)."""
    diff = a.astype(np.float32) - b.astype(np.float32)
    sq = cv2.transform(diff * diff, np.ones((1, 3), dtype=np.float32))
    return cv2.sqrt(sq).reshape(a.shape[:2])


def _refine_surface(
    small: np.ndarray, prior: np.ndarray, bg: np.ndarray, sigma: float
) -> np.ndarray:
    """Normalised convolution of the background pixels, falling back to ``prior``."""
    m = cv2.erode(bg.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    if m.sum() < 16:
        return prior
    weight = cv2.GaussianBlur(m, (0, 0), sigma)
    acc = cv2.GaussianBlur(small * m[..., None], (0, 0), sigma)
    eps = 0.02
    return (acc + eps * prior) / (weight[..., None] + eps)


def estimate_background(rgb: np.ndarray) -> tuple[BackgroundModel, np.ndarray]:
    """Model the background of an HxWx3 uint8 image from its border.

    Returns the model and the per-pixel colour distance from the background surface
    (measured on a denoised copy when the image is noisy).
    """
    h, w = rgb.shape[:2]
    noise = estimate_noise(rgb)
    work = denoise(rgb, noise)

    scale = min(1.0, WORK_SIDE / max(h, w))
    sw, sh = max(4, round(w * scale)), max(4, round(h * scale))
    small = cv2.resize(work.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    sring = ring_mask(sh, sw, 2)
    quad, _inl, resid_scale, colour = _robust_quadratic(small, sring)
    seed_tol = max(3.5 * resid_scale, MIN_THRESHOLD)

    # Low-resolution flood over slowly varying colour, seeded by the border pixels the
    # quadratic explains: the background may carry blotches, vignettes or a soft shadow,
    # but it has no sharp edges, while the subject's outline does.
    too_smooth = smoothness_mask(rgb, noise)
    blocked = None
    if too_smooth is not None:
        share = cv2.resize(too_smooth.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
        blocked = share > 0.5
    seeds = sring & (colour_distance(small, quad) <= seed_tol)
    bg_small = smooth_region(small, seeds, blocked)
    surface = _refine_surface(small, quad, bg_small, max(sw, sh) / 40.0)

    full_surface = cv2.resize(surface, (w, h), interpolation=cv2.INTER_LINEAR)
    dist = colour_distance(work, full_surface)

    # Threshold from the distances over the background the low-resolution pass found,
    # shrunk away from its edge so anti-aliased subject pixels do not count.
    bg_full = cv2.resize(
        cv2.erode(bg_small.astype(np.uint8), np.ones((3, 3), np.uint8)),
        (w, h),
        interpolation=cv2.INTER_NEAREST,
    ).astype(bool)
    step = max(1, min(h, w) // 256)
    sample = dist[::step, ::step][bg_full[::step, ::step]]
    if sample.size >= 64:
        q = float(np.percentile(sample, 99.9))
        threshold = max(MIN_THRESHOLD, 1.3 * q + 2.0)
    else:
        threshold = max(MIN_THRESHOLD, 6.0 * noise)

    rw = ring_width(h, w)
    ring = ring_mask(h, w, rw)
    inlier_share = float(np.mean(dist[ring] < threshold))
    spread = float(np.ptp(surface.reshape(-1, 3), axis=0).max())
    model = BackgroundModel(
        surface=full_surface,
        noise=noise,
        threshold=threshold,
        inlier_share=inlier_share,
        colour=colour,
        varying=spread > 6.0,
        too_smooth=too_smooth,
        work=work,
    )
    kind = "gradient" if model.varying else f"solid colour rgb{colour}"
    model.notes.append(
        f"background: {kind}, noise sigma {noise:.1f}, threshold {threshold:.1f}, "
        f"{inlier_share:.0%} of the border fits the model (residual {resid_scale:.1f})"
    )
    return model, dist
