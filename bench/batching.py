"""Batching across jobs: throughput (jobs/s) against the batch bound, on the engine.

    python bench/batching.py [--jobs 16] [--bounds 1,2,4,8] [--base /models/sdxl --lora F]

Runs the same ``--jobs`` jobs (one image each, different prompts and seeds, one batch key)
through :meth:`Engine.generate_many` in groups of at most N jobs, for each bound N, and
prints jobs/s (median of 3 interleaved rounds) and the speed-up over N=1. Without
``--base``: the tiny SDXL of the test suite at 64x64, 4 steps, one CPU thread (the
figure shows what batching saves around the model: per-call Python, text encoding,
scheduler and VAE set-up). With real weights on a GPU it shows the utilisation gain
(1024x1024, 20 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rows(
    jobs: int = 16,
    bounds: tuple[int, ...] = (1, 2, 4, 8),
    base: str | None = None,
    lora: str | None = None,
    steps: int | None = None,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    import torch
    from engine import _presets_file, _row, _tiny_models  # type: ignore[import-not-found]

    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.engine.pipeline import Engine
    from sticker_maker.params import parse_request, resolve
    from sticker_maker.presets import load_presets

    tiny = base is None
    if tiny:
        torch.set_num_threads(1)
    size = 64 if tiny else 1024
    steps = steps or (4 if tiny else 20)
    with tempfile.TemporaryDirectory(prefix="sticker-batch-") as tmp:
        folder = Path(tmp)
        if tiny:
            models = _tiny_models(folder)
            base, lora = models["base"], models["lora"]
        registry = load_presets(_presets_file(folder, str(base), lora, {}))
        engine = Engine(registry, cache_size=1, options=EngineOptions.from_env())
        requests = [
            {
                "preset": "bench",
                "prompt": f"cute animal number {n}",
                "seed": 1000 + n,
                "width": size,
                "height": size,
                "steps": steps,
                "scheduler": "Euler",
            }
            for n in range(jobs)
        ]
        inputs = [resolve(parse_request(r), registry) for r in requests]
        engine.generate_many(inputs[:2])  # warm-up: weights, caches
        out = []
        label = "tiny SDXL 64² 4 steps, 1 CPU thread" if tiny else f"SDXL {size}² {steps} steps"
        rates: dict[int, list[float]] = {b: [] for b in bounds}
        for _ in range(repeats):  # interleaved, so a burst of load hits every bound alike
            for bound in bounds:
                started = time.perf_counter()
                for at in range(0, jobs, bound):
                    results = engine.generate_many(inputs[at : at + bound])
                    assert all(r.error is None for r in results), [r.error for r in results]
                rates[bound].append(jobs / (time.perf_counter() - started))
        single = statistics.median(rates[bounds[0]])
        for bound in bounds:
            rate = statistics.median(rates[bound])
            out.append(
                _row(
                    "batching",
                    f"{label}, {jobs} jobs, --max-batch {bound}",
                    rate,
                    "jobs/s",
                    f"x{rate / single:.2f} vs 1",
                )
            )
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--bounds", default="1,2,4,8")
    parser.add_argument("--base", default=os.environ.get("STICKER_MAKER_BENCH_BASE"))
    parser.add_argument("--lora", default=os.environ.get("STICKER_MAKER_BENCH_LORA"))
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    bounds = tuple(int(b) for b in args.bounds.split(","))
    for r in rows(args.jobs, bounds, args.base, args.lora, args.steps):
        print(f"{r['setting']:<60} {r['value']:>8.2f} {r['unit']}   ({r['reference']})")


if __name__ == "__main__":
    main()
