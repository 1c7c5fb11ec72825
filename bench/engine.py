"""Engine speed: ms per denoising step and per image, and seconds per 1024² sticker.

Without weights it builds the tiny random SDXL of the test suite and times it on the CPU
(the figures say how much overhead the engine adds around diffusers, not how fast a real
model is). Given a real SDXL folder (``--base`` or ``STICKER_MAKER_BENCH_BASE``, plus
optional ``--lora``) it times a 1024² sticker at 20 steps on the chosen device and prints
it beside the hosted services (13-16 s per prediction) and the H100 compute floor (0.28 s
for 20 steps of SDXL with guidance; ``/work/shared/reference/anchors.md``).

    python bench/engine.py                       # tiny model, CPU
    python bench/engine.py --base /models/sdxl --lora /models/stickers.safetensors --device cuda
    STICKER_MAKER_COMPILE=1 python bench/engine.py --base /models/sdxl --repeats 5

Rows: one job; 4 samples in one call; 4 jobs batched in one call (batching across jobs,
``serve --max-batch``); no LoRA; the other LoRA mode (fused vs unfused); the LoRA cost
per step (none, unfused, fused: interleaved in one run) with what a fused switch costs
(ms per ``lora_scale`` change, bytes kept to unfuse exactly); with ``--compile``
(default with real weights on a GPU) a ``torch.compile``'d UNet; on the tiny model also
upscale + refine.

Importable: :func:`rows` returns the measurements as dicts; :func:`main` prints them.
Engine options (device, dtype, offload, LoRA fusing, compile) come from the same
``STICKER_MAKER_*`` variables as ``sticker-maker serve``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HOSTED_SECONDS = "13-16 s"  # hosted sticker-maker / Segmind StickerSheet predictions
H100_FLOOR_SECONDS = 0.28  # 20 SDXL steps with guidance at 989 TFLOP/s bf16 dense


def _presets_file(folder: Path, base: str, lora: str | None, upscale: dict[str, str]) -> Path:
    lines = ["[presets.bench]", f'base = "{base}"']
    if lora:
        lines.append(f'lora = "{lora}"')
    lines += ['prompt_template = "Sticker, {prompt}, svg, solid color background"']
    lines += [f'{k} = "{v}"' for k, v in upscale.items()]
    lines += ["", "[presets.bench-nolora]", f'base = "{base}"']
    path = folder / "presets.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tiny_models(folder: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import (
        build_tiny_esrgan,
        build_tiny_lora,
        build_tiny_sd15_img2img,
        build_tiny_sdxl,
    )

    sdxl = build_tiny_sdxl(folder / "sdxl")
    return {
        "base": str(sdxl),
        "lora": str(build_tiny_lora(sdxl, folder / "lora.safetensors", layout="kohya")),
        "upscaler": str(build_tiny_esrgan(folder / "esrgan.pth")),
        "refiner": str(build_tiny_sd15_img2img(folder / "sd15")),
    }


def _time_job(engine: Any, registry: Any, repeats: int, **fields: Any) -> dict[str, float]:
    """Median seconds per job and per denoising step over ``repeats`` runs (after a warm-up)."""
    from sticker_maker.params import parse_request, resolve

    job = resolve(parse_request({"prompt": "cute cat", "seed": 1, **fields}), registry)
    engine.generate(job)  # warm-up: loads weights, compiles, fills caches
    totals, steps = [], []
    for _ in range(repeats):
        stamps: list[float] = []

        def stamp(_step: int, _total: int, stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())

        started = time.perf_counter()
        engine.generate(job, on_progress=stamp)
        totals.append(time.perf_counter() - started)
        deltas = [b - a for a, b in itertools.pairwise(stamps)]
        if deltas:
            steps.append(statistics.median(deltas))
    return {
        "job_s": statistics.median(totals),
        "step_s": statistics.median(steps) if steps else float("nan"),
        "samples": job.samples,
    }


def _time_batch(engine: Any, registry: Any, repeats: int, **fields: Any) -> float:
    """Median seconds per job when 4 jobs (other prompts and seeds) share one call."""
    from sticker_maker.params import parse_request, resolve

    jobs = [
        resolve(parse_request({"prompt": f"cute cat {n}", "seed": n, **fields}), registry)
        for n in range(4)
    ]
    engine.generate_many(jobs)  # warm-up (batch shapes)
    totals = []
    for _ in range(repeats):
        started = time.perf_counter()
        results = engine.generate_many(jobs)
        totals.append(time.perf_counter() - started)
        assert all(r.error is None for r in results), [r.error for r in results]
    return statistics.median(totals) / len(jobs)


def _lora_cost(registry: Any, repeats: int, steps: int, common: dict[str, Any]) -> dict:
    """ms per denoising step with no LoRA, the LoRA unfused and fused, the three timed in
    turn (so machine load hits them alike), plus a fused engine's ``lora_scale`` switch."""
    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.engine.pipeline import Engine

    unfused = Engine(registry, cache_size=1, options=EngineOptions.from_env(fuse_lora="off"))
    fused = Engine(registry, cache_size=1, options=EngineOptions.from_env(fuse_lora="on"))
    cases = {
        "none": (fused, {**common, "preset": "bench-nolora"}),
        "unfused": (unfused, common),
        "fused": (fused, common),
    }
    from sticker_maker.params import parse_request, resolve

    steps_ms: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (engine, fields) in cases.items():
            job = resolve(
                parse_request({"prompt": "cute cat", "seed": 1, "steps": steps, **fields}),
                registry,
            )
            engine.generate(job)  # switches the LoRA (weight work, not a step)
            # CPU time of the denoising thread: on a shared machine wall time mostly
            # measures the neighbours (on a GPU this is the host's share only: use wall)
            clock = time.thread_time if engine.placement.device.type == "cpu" else time.perf_counter
            stamps: list[float] = []
            engine.generate(job, on_progress=lambda _s, _t, st=stamps, c=clock: st.append(c()))
            deltas = [b - a for a, b in itertools.pairwise(stamps)]
            steps_ms[name].append(statistics.median(deltas) * 1000)
    preset = registry.get("bench")
    loaded = fused.models.prepare(preset, 1.0)
    switches = []
    for n in range(4 * repeats):
        started = time.perf_counter()
        fused.models.prepare(preset, 0.5 if n % 2 == 0 else 1.0)
        switches.append(time.perf_counter() - started)
    state = loaded.lora
    return {
        **{name: statistics.median(values) for name, values in steps_ms.items()},
        "switch_ms": statistics.median(switches) * 1000,
        "restore_bytes": state.restore_bytes,
        "fused_bytes": state.fused_weight_bytes,
    }


def _row(bench: str, setting: str, value: float, unit: str, reference: str = "") -> dict:
    return {
        "bench": bench,
        "setting": setting,
        "value": round(value, 4),
        "unit": unit,
        "reference": reference,
    }


def rows(
    base: str | None = None,
    lora: str | None = None,
    *,
    repeats: int = 3,
    steps: int | None = None,
    size: int | None = None,
    threads: int | None = None,
    compile_too: bool | None = None,
) -> list[dict[str, Any]]:
    """Measure the engine. Without ``base``: tiny model at 64², else a 1024² sticker.

    ``threads`` sets torch's CPU threads (default: 1 for the tiny model, whose layers are
    too small to split, and which on a busy machine suffers from spinning OpenMP threads;
    torch's default otherwise).
    """
    import torch

    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.engine.pipeline import Engine
    from sticker_maker.presets import load_presets

    tiny = base is None
    if compile_too is None:  # compiling the tiny model on a CPU takes minutes, for nothing
        compile_too = not tiny and torch.cuda.is_available()
    if threads or tiny:
        torch.set_num_threads(threads or 1)
    with tempfile.TemporaryDirectory(prefix="sticker-bench-") as tmp:
        folder = Path(tmp)
        upscale: dict[str, str] = {}
        if tiny:
            models = _tiny_models(folder)
            base, lora = models["base"], models["lora"]
            upscale = {"upscaler": models["upscaler"], "refiner": models["refiner"]}
        registry = load_presets(_presets_file(folder, str(base), lora, upscale))
        options = EngineOptions.from_env()
        engine = Engine(registry, cache_size=1, options=options)
        where = (
            f"{engine.placement.device} {str(engine.placement.dtype).removeprefix('torch.')}"
            f", LoRA {'fused' if engine.placement.fuse_lora else 'unfused'}"
            + (", compiled" if options.compile else "")
            + (f", offload {options.offload}" if options.offload != "none" else "")
            + (
                f", {torch.get_num_threads()} CPU thread(s)"
                if engine.placement.device.type == "cpu"
                else ""
            )
        )
        size = size or (64 if tiny else 1024)
        steps = steps or 20
        common = {"preset": "bench", "width": size, "height": size, "scheduler": "Euler"}
        out: list[dict[str, Any]] = []
        label = "tiny SDXL" if tiny else "SDXL"

        one = _time_job(engine, registry, repeats, steps=steps, **common)
        setting = f"{label} {size}² {steps} steps, {where}"
        out.append(_row("engine", setting, one["step_s"] * 1000, "ms/step"))
        reference = "" if tiny else f"hosted {HOSTED_SECONDS}; H100 floor {H100_FLOOR_SECONDS} s"
        out.append(
            _row("engine", setting, one["job_s"], "s/image" if tiny else "s/sticker", reference)
        )
        four = _time_job(engine, registry, repeats, steps=steps, samples=4, **common)
        out.append(
            _row("engine", f"{setting}, samples=4 in one call", four["job_s"] / 4, "s/image")
        )
        batched = _time_batch(engine, registry, repeats, steps=steps, **common)
        out.append(
            _row(
                "engine",
                f"{setting}, 4 jobs batched in one call (--max-batch 4)",
                batched,
                "s/image" if tiny else "s/sticker",
                reference,
            )
        )
        nolora = _time_job(
            engine, registry, repeats, steps=steps, **{**common, "preset": "bench-nolora"}
        )
        out.append(_row("engine", f"{setting}, no LoRA", nolora["step_s"] * 1000, "ms/step"))
        # The other LoRA mode (fused <-> unfused), same everything else.
        flipped = "off" if engine.placement.fuse_lora else "on"
        del engine
        other = Engine(
            registry,
            cache_size=1,
            options=EngineOptions.from_env(fuse_lora=flipped),
        )
        alt = _time_job(other, registry, repeats, steps=steps, **common)
        out.append(
            _row(
                "engine",
                f"{setting}, but LoRA {'fused' if flipped == 'on' else 'unfused'}",
                alt["step_s"] * 1000,
                "ms/step",
            )
        )
        engine = other
        cost = _lora_cost(registry, repeats, steps, common)
        clock = "CPU ms" if engine.placement.device.type == "cpu" else "ms"
        lora_setting = (
            f"{label} {size}² {steps} steps, {where.split(', LoRA')[0]}, load "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        for name in ("none", "unfused", "fused"):
            out.append(
                _row(
                    "engine",
                    f"{lora_setting}, LoRA cost per step: {name} (interleaved)",
                    cost[name],
                    f"{clock}/step",
                    "target: fused = none" if name == "fused" else "",
                )
            )
        share = cost["restore_bytes"] / max(cost["fused_bytes"], 1) * 100
        out.append(
            _row(
                "engine",
                f"{lora_setting}, fused LoRA lora_scale switch (unfuse exactly + fuse); keeps "
                f"{cost['restore_bytes'] / 1024:.0f} KiB = {share:.0f} % of the fused weights",
                cost["switch_ms"],
                "ms",
            )
        )
        if compile_too:
            del engine
            compiled = Engine(registry, cache_size=1, options=EngineOptions.from_env(compile=True))
            comp = _time_job(compiled, registry, repeats, steps=steps, **common)
            out.append(
                _row(
                    "engine",
                    f"{setting}, UNet torch.compile'd",
                    comp["job_s"],
                    "s/image" if tiny else "s/sticker",
                    reference,
                )
            )
            engine = compiled
        if tiny:
            up = _time_job(
                engine, registry, repeats, steps=4, upscale=True, upscale_steps=4, **common
            )
            out.append(
                _row(
                    "engine",
                    f"{label} {size}² 4 steps + upscale 2x + refine 4",
                    up["job_s"],
                    "s/image",
                )
            )
        return out


def _print(table: list[dict[str, Any]]) -> None:
    width = max(len(r["setting"]) for r in table)
    for r in table:
        ref = f"   ({r['reference']})" if r["reference"] else ""
        print(f"{r['setting']:<{width}}  {r['value']:>10.4g} {r['unit']}{ref}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base",
        default=os.environ.get("STICKER_MAKER_BENCH_BASE"),
        help="real SDXL diffusers folder or Hub id ($STICKER_MAKER_BENCH_BASE)",
    )
    parser.add_argument(
        "--lora",
        default=os.environ.get("STICKER_MAKER_BENCH_LORA"),
        help="LoRA file for --base ($STICKER_MAKER_BENCH_LORA)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (20)")
    parser.add_argument("--size", type=int, default=None, help="side in px (64 tiny, 1024)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time a torch.compile'd UNet (default: on with --base on a GPU)",
    )
    parser.add_argument("--device", default=None, help="cuda, cpu, ... ($STICKER_MAKER_DEVICE)")
    args = parser.parse_args(argv)
    if args.device:
        os.environ["STICKER_MAKER_DEVICE"] = args.device
    table = rows(
        args.base,
        args.lora,
        repeats=args.repeats,
        steps=args.steps,
        size=args.size,
        threads=args.threads,
        compile_too=args.compile,
    )
    _print(table)


if __name__ == "__main__":
    main()
