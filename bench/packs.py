"""Packs and reference pictures on the engine (tiny model, CPU).

    python bench/packs.py [--stickers 8] [--repeats 3] [--out bench/results/packs-cpu-tiny.json]

1. A pack of N stickers (one job, N expressions: lanes of one denoising loop) against the
   same N stickers as N separate jobs run one after another (what N queued jobs on a
   worker with --max-batch 1 would do): time to the last sticker, and the ratio.
2. A job with a reference picture (IP-Adapter plus-face on the face found in a real photo,
   face detection and image encoding included) against the same job without one.

The tiny SDXL of the test suite at 64x64, 4 steps, one CPU thread, with a tiny IP-Adapter
in h94/IP-Adapter's layout. Medians of ``--repeats`` interleaved rounds. Figures show the
engine's overhead around the model (per-job set-up, prompt encoding, the image encoder),
not GPU time: on a GPU with real weights the UNet dominates.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(stickers: int = 8, repeats: int = 3) -> dict[str, Any]:
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data  # type: ignore[import-untyped]
    from tiny_models import (  # type: ignore[import-not-found]
        IP_ADAPTER_PLUS_FACE_FILE,
        IP_ADAPTER_PLUS_FILE,
        build_tiny_ip_adapter,
        build_tiny_sdxl,
    )

    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.engine.pipeline import Engine
    from sticker_maker.params import Expression, Reference, parse_request, resolve
    from sticker_maker.presets import load_presets

    torch.set_num_threads(1)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(data.astronaut())).save(buf, format="PNG")
    face = buf.getvalue()
    with tempfile.TemporaryDirectory(prefix="sticker-packs-") as tmp:
        folder = Path(tmp)
        sdxl = build_tiny_sdxl(folder / "sdxl")
        ip = build_tiny_ip_adapter(sdxl, folder / "IP-Adapter")
        presets = folder / "presets.toml"
        presets.write_text(
            f"""
[presets.bench]
base = "{sdxl}"
scheduler = "Euler"
steps = 4
width = 64
height = 64
ip_adapter = "{ip}"
ip_adapter_weights = "{IP_ADAPTER_PLUS_FILE}"
ip_adapter_face_weights = "{IP_ADAPTER_PLUS_FACE_FILE}"
"""
        )
        registry = load_presets(presets)
        engine = Engine(registry, cache_size=1, options=EngineOptions.from_env())
        base = resolve(parse_request({"preset": "bench", "prompt": "a fox", "seed": 3}), registry)
        expressions = tuple(
            Expression(name=f"e{n}", emoji="😀", prompt=f"expression {n}") for n in range(stickers)
        )
        pack = base.model_copy(update={"expressions": expressions, "samples": stickers})
        singles = [base.model_copy(update={"prompt": p}) for p in pack.prompts()]
        reference = Reference(image="me.png", ip_adapter_weight=0.6, ip_adapter_noise=0.5)
        with_picture = base.model_copy(update={"reference": reference})
        engine.generate(with_picture, picture=face)  # warm-up: weights, IP-Adapter, detector
        engine.generate(pack)
        times: dict[str, list[float]] = {"pack": [], "separate": [], "ref": [], "plain": []}
        for _ in range(repeats):
            started = time.perf_counter()
            assert len(engine.generate(pack)) == stickers
            times["pack"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for single in singles:
                engine.generate(single)
            times["separate"].append(time.perf_counter() - started)
            started = time.perf_counter()
            engine.generate(with_picture, picture=face)
            times["ref"].append(time.perf_counter() - started)
            started = time.perf_counter()
            engine.generate(base)
            times["plain"].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "bench": "packs",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}",
        "load_average": round(os.getloadavg()[0], 2),
        "model": "tiny SDXL 64x64, 4 steps, Euler, 1 CPU thread, tiny IP-Adapter plus/plus-face",
        "stickers": stickers,
        "repeats": repeats,
        "pack_seconds": round(med["pack"], 4),
        "separate_jobs_seconds": round(med["separate"], 4),
        "pack_vs_separate_ratio": round(med["separate"] / med["pack"], 2),
        "reference_job_seconds": round(med["ref"], 4),
        "prompt_only_job_seconds": round(med["plain"], 4),
        "reference_vs_prompt_only_ratio": round(med["ref"] / med["plain"], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stickers", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.stickers, args.repeats)
    print(f"{result['machine']}, load average {result['load_average']}")
    print(result["model"])
    print(
        f"pack of {result['stickers']} in one loop: {result['pack_seconds']:.3f} s to the last "
        f"sticker; {result['stickers']} separate jobs: {result['separate_jobs_seconds']:.3f} s "
        f"(x{result['pack_vs_separate_ratio']:.2f} faster as a pack)"
    )
    print(
        f"reference job: {result['reference_job_seconds']:.3f} s; prompt-only job: "
        f"{result['prompt_only_job_seconds']:.3f} s "
        f"(x{result['reference_vs_prompt_only_ratio']:.2f})"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
