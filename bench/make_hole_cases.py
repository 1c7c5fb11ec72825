"""Build cut-out cases with holes (and line art) with exact ground truth.

    python bench/make_hole_cases.py --noto DIR --tabler DIR --out DIR [--seed N]

``--noto`` and ``--tabler`` are unpacked npm packages ``@iconify-json/noto`` (1.2.9,
Apache-2.0) and ``@iconify-json/tabler`` (1.2.41, MIT): ``npm pack`` them and untar. Needs
``cairosvg`` (not a project dependency: this script only makes data). The output mirrors
``stickers-noto/composite``: ``caseNNN_{white,color,noise}.png`` plus the true alpha
``caseNNN_alpha.png`` (L mode), all 1024x1024, and a ``manifest.json`` that records for
each case the icon, the style (``emoji``: Noto's shaded colour art; ``line``: Tabler's
stroked outline icons in one dark colour), whether the true alpha has holes (transparent
regions enclosed by the subject) and the ``split`` (``tune`` or ``holdout``: tune on one,
report both).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = 1024
# Noto (3D-looking colour emoji) with holes: wheels, rings, handles, loops, lenses.
EMOJI = [
    "bicycle",
    "doughnut",
    "bagel",
    "key",
    "scissors",
    "glasses",
    "chains",
    "pretzel",
    "paperclip",
    "linked-paperclips",
    "safety-pin",
    "anchor",
    "trophy",
    "hollow-red-circle",
    "curly-loop",
    "infinity",
    "ferris-wheel",
    "sunglasses",
    "headphone",
    "man-in-manual-wheelchair",
    "kick-scooter",
    "stethoscope",
    "beer-mug",
    "shopping-cart",
    "spider-web",
    "link",
    "ring",
    "teapot",
]
# Tabler line art: stroked outlines (most enclose background, a few do not).
LINE = [
    "bike",
    "key",
    "scissors",
    "eyeglass",
    "link",
    "rings",
    "mug",
    "lock",
    "anchor",
    "trophy",
    "headphones",
    "paperclip",
    "wheel",
    "camera",
    "home",
    "heart",
    "star",
    "cloud",
    "letter-a",
    "letter-b",
    "infinity",
    "music",
    "check",
    "x",
    "wave-sine",
    "signature",
    "scribble",
    "arrow-right",
    "plus",
    "brush",
]
LINE_COLOURS = [(20, 20, 20), (30, 40, 90), (110, 20, 30), (20, 70, 40), (60, 60, 60)]


def icon_svg(package: Path, name: str, stroke: tuple[int, int, int], width: float) -> str:
    data = json.loads((package / "package" / "icons.json").read_text())
    icon = data["icons"][name]
    w = icon.get("width", data.get("width", 16))
    h = icon.get("height", data.get("height", 16))
    body = icon["body"].replace("currentColor", "rgb({},{},{})".format(*stroke))
    body = body.replace('stroke-width="2"', f'stroke-width="{width:g}"')
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}">{body}</svg>'


def render(svg: str, side: int) -> np.ndarray:
    import cairosvg  # only to make data; not a project dependency

    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=side, output_height=side)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def backdrop(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if kind == "white":
        return np.full((SIZE, SIZE, 3), 255.0), {}
    if kind == "color":
        c = rng.integers(30, 230, 3)
        return np.broadcast_to(c.astype(np.float64), (SIZE, SIZE, 3)).copy(), {
            "bg_color": c.tolist()
        }
    c1 = rng.uniform(200, 255, 3).round()
    c2 = rng.uniform(200, 255, 3).round()
    sigma = float(rng.uniform(4, 10))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    angle = rng.uniform(0, np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    bg = c1 * (1 - t) + c2 * t
    blotch = cv2.resize(rng.normal(0, 1, (6, 6)).astype(np.float32), (SIZE, SIZE))
    bg = bg + 8.0 * cv2.GaussianBlur(blotch, (0, 0), SIZE / 20)[..., None]
    bg = bg + rng.normal(0, sigma, bg.shape)
    return bg, {"bg_noise": {"c1": c1.tolist(), "c2": c2.tolist(), "sigma": round(sigma, 2)}}


def has_holes(alpha: np.ndarray) -> tuple[bool, float]:
    """Whether the >=50 % mask encloses transparent regions; their share of the subject."""
    solid = (alpha >= 128).astype(np.uint8)
    outside = 1 - solid
    _n, labels = cv2.connectedComponents(outside, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = outside.astype(bool) & ~np.isin(labels, edge)
    share = float(enclosed.sum() / max(1, solid.sum()))
    return share >= 0.002, share


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--noto", type=Path, required=True)
    ap.add_argument("--tabler", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    out = args.out / "composite"
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    items = [("emoji", n) for n in EMOJI] + [("line", n) for n in LINE]
    for i, (style, name) in enumerate(items):
        frac = float(rng.uniform(0.35, 0.85))
        side = round(SIZE * frac)
        if style == "emoji":
            svg = icon_svg(args.noto, name, (0, 0, 0), 2)
            colour, width = None, None
        else:
            colour = LINE_COLOURS[int(rng.integers(len(LINE_COLOURS)))]
            width = float(rng.choice([1.25, 1.5, 2.0, 2.5]))
            svg = icon_svg(args.tabler, name, colour, width)
        art = render(svg, side).astype(np.float64)
        x0 = int(rng.integers(0, SIZE - side + 1))
        y0 = int(rng.integers(0, SIZE - side + 1))
        fg = np.zeros((SIZE, SIZE, 3))
        alpha = np.zeros((SIZE, SIZE))
        fg[y0 : y0 + side, x0 : x0 + side] = art[..., :3]
        alpha[y0 : y0 + side, x0 : x0 + side] = art[..., 3] / 255.0
        a8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
        holes, share = has_holes(a8)
        case = f"case{i:03d}"
        entry = {
            "case": case,
            "item": name,
            "style": style,
            "holes": holes,
            "hole_share": round(share, 4),
            "split": "tune" if i % 2 == 0 else "holdout",
            "bbox": [x0, y0, x0 + side, y0 + side],
        }
        if colour is not None:
            entry["stroke"] = {"colour": list(colour), "width": width}
        Image.fromarray(a8, "L").save(out / f"{case}_alpha.png")
        for kind in ("white", "color", "noise"):
            bg, info = backdrop(kind, rng)
            comp = fg * alpha[..., None] + bg * (1 - alpha[..., None])
            img = np.clip(comp + 0.5, 0, 255).astype(np.uint8)
            Image.fromarray(img, "RGB").save(out / f"{case}_{kind}.png", compress_level=6)
            entry.update({k: v for k, v in info.items()})
        cases.append(entry)
        print(case, style, name, "holes" if holes else "-", f"{share:.3f}")
    manifest = {
        "mode": "composite",
        "source": "noto (emoji) + tabler (line art)",
        "license": "Apache-2.0 (Noto Emoji), MIT (Tabler Icons), via @iconify-json",
        "size": SIZE,
        "seed": args.seed,
        "cases": cases,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
