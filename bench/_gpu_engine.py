"""The in-process rows of ``bench/gpu_check.py``: the production ``Engine`` on the built SDXL.

Per-step cost of a fused LoRA against none, VAE decode and cut-out, and the five defect
checks of issue 13 (memory during steps and decode, big batches then one more job, joining
lanes' pixels against alone, LoRA switch cycles against pristine weights, compile and offload).
Each function returns rows ``(name, value, note, ok)``; ``ok`` is None where there is no
pass/fail. Timings come from forward hooks (``fullsize.Timings``), which synchronise CUDA.
"""

from __future__ import annotations

import gc
import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fullsize  # type: ignore[import-not-found]

Row = tuple[str, str, str, bool | None]
GIB = 1024**3
JOIN_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M Karras", "DPM++ 2M SDE Karras")


@dataclass(frozen=True)
class Setup:
    presets: Path
    device: str
    dtype: str
    size: int
    steps: int
    #: steps for the defect checks (memory and pixels do not depend on the step count)
    short_steps: int


def engine(setup: Setup, **options: Any) -> Any:
    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.engine.pipeline import Engine
    from sticker_maker.presets import load_presets

    opts = EngineOptions(device=setup.device, dtype=setup.dtype, **options)
    return Engine(load_presets(setup.presets), cache_size=2, options=opts)


def drop(eng: Any) -> None:
    """Let an engine's models go and give their memory back."""
    from sticker_maker.engine.device import free_memory

    placement = eng.placement
    eng.cache.clear()
    del eng
    gc.collect()
    free_memory(placement)


def job(eng: Any, setup: Setup, **fields: Any) -> Any:
    from sticker_maker.params import parse_request, resolve

    body = {"prompt": "a cute cat", "seed": 1, "width": setup.size, "height": setup.size}
    return resolve(parse_request(body | fields), eng.presets)


def pipe_of(eng: Any, preset: str = "sticker-maker") -> Any:
    recipe = eng.presets.get(preset)
    return eng.models.prepare(recipe, recipe.lora_scale).pipe


def cuda(eng: Any) -> bool:
    return bool(eng.placement.is_cuda)


def _torch() -> Any:
    import torch

    return torch


def peak_gib(eng: Any) -> float | None:
    return _torch().cuda.max_memory_allocated() / GIB if cuda(eng) else None


def reset_peak(eng: Any) -> None:
    if cuda(eng):
        _torch().cuda.reset_peak_memory_stats()


def pixels(images: list[Any]) -> list[Any]:
    import numpy as np

    return [np.asarray(g.image.convert("RGB"), dtype=np.int16) for g in images]


def gib(value: float | None) -> str:
    return "n/a (cpu)" if value is None else f"{value:.1f} GiB"


# --------------------------------------------------------------------------- (b) rows


def per_step_rows(eng: Any, setup: Setup) -> list[Row]:
    """Fused LoRA against none per step; VAE decode and cut-out ms; peak memory, batch 1."""
    from sticker_maker.worker import stickers as finishing_steps

    pipe = pipe_of(eng)
    timings = fullsize.Timings(pipe, cuda(eng))
    try:
        eng.generate(job(eng, setup, steps=2))  # warm-up (kernels, allocator)
        steps, decodes = {}, []
        reset_peak(eng)
        for preset in ("sticker-maker", "fullsize-nolora"):
            timings.reset()
            images = eng.generate(job(eng, setup, preset=preset, steps=setup.steps))
            steps[preset] = statistics.median(timings.unet)
            decodes += timings.decode
        peak = peak_gib(eng)
        recipe = eng.presets.get("sticker-maker")
        began = time.perf_counter()
        finishing_steps.finish(images[0].image, recipe, None, lambda _line: None)
        cutout = time.perf_counter() - began
        finite = timings.finite
    finally:
        timings.close()
    lora, plain = steps["sticker-maker"], steps["fullsize-nolora"]
    extra = (lora / plain - 1) * 100
    fused = "fused" if eng.placement.fuse_lora else "unfused"
    return [
        (
            f"per step: LoRA ({fused}) vs none",
            f"{lora * 1000:.1f} vs {plain * 1000:.1f} ms ({extra:+.1f} %)",
            "target: fused costs nothing (item 4)",
            (extra < 3.0) if eng.placement.fuse_lora else None,
        ),
        ("VAE decode, 1 image", f"{statistics.median(decodes) * 1000:.0f} ms", "", finite),
        ("cut-out (preset's remover), 1 image", f"{cutout * 1000:.0f} ms", "", None),
        ("peak VRAM, batch 1", gib(peak), "target ≤ 16 GiB", None if peak is None else peak <= 16),
    ]


# --------------------------------------------------------------------------- (c) defects


class _MemoryProbe:
    """Peak device memory during the UNet steps and during the VAE decode (forward hooks)."""

    def __init__(self, pipe: Any, on_cuda: bool) -> None:
        self.cuda = on_cuda
        self.steps = 0.0
        self.decode = 0.0
        torch = _torch()
        self._handles = [
            pipe.unet.register_forward_hook(lambda *_: self._read("steps")),
            pipe.vae.decoder.register_forward_pre_hook(lambda *_: self._reset()),
            pipe.vae.decoder.register_forward_hook(lambda *_: self._read("decode")),
        ]
        self._torch = torch

    def _reset(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()
            self._torch.cuda.reset_peak_memory_stats()

    def _read(self, what: str) -> None:
        if self.cuda:
            peak = self._torch.cuda.max_memory_allocated() / GIB
            setattr(self, what, max(getattr(self, what), peak))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def memory_rows(eng: Any, setup: Setup) -> list[Row]:
    """(c1) one job's peak memory during steps and during decode; image finite; VAE dtype."""
    pipe = pipe_of(eng)
    probe = _MemoryProbe(pipe, cuda(eng))
    timings = fullsize.Timings(pipe, cuda(eng))
    try:
        reset_peak(eng)
        eng.generate(job(eng, setup, steps=setup.short_steps))
    finally:
        probe.close()
        timings.close()
    vae_dtype = str(pipe.vae.dtype).removeprefix("torch.")
    want = str(eng.placement.dtype).removeprefix("torch.")
    value = (
        f"steps {gib(probe.steps if cuda(eng) else None)}, "
        f"decode {gib(probe.decode if cuda(eng) else None)}"
    )
    note = f"image finite: {timings.finite}; VAE after: {vae_dtype} (want {want})"
    return [
        ("1 job: peak memory steps / decode", value, note, timings.finite and vae_dtype == want)
    ]


def _results(eng: Any, jobs: list[Any]) -> tuple[int, list[str], float | None]:
    reset_peak(eng)
    results = eng.generate_many(jobs)
    errors = [f"{type(r.error).__name__}: {str(r.error)[:120]}" for r in results if r.error]
    return sum(len(r.images) for r in results), errors, peak_gib(eng)


def big_batch_rows(eng: Any, setup: Setup) -> list[Row]:
    """(c2) 4 jobs x 4 samples, then 8 lanes, at full size; then one more job."""
    rows: list[Row] = []
    steps = setup.short_steps
    for name, jobs, target in (
        (
            "4 jobs x 4 samples",
            [job(eng, setup, seed=i, samples=4, steps=steps) for i in range(4)],
            None,
        ),
        (
            "8 lanes (8 jobs x 1)",
            [job(eng, setup, seed=10 + i, steps=steps) for i in range(8)],
            24.0,
        ),
    ):
        images, errors, peak = _results(eng, jobs)
        ok = not errors and (target is None or peak is None or peak <= target)
        note = "; ".join(errors[:1]) or ("target ≤ 24 GiB (a 24 GB card)" if target else "")
        rows.append((name, f"{images} images, peak {gib(peak)}", note, ok))
    images, errors, peak = _results(eng, [job(eng, setup, seed=99, steps=steps)])
    rows.append(
        ("then one more job", f"{images} image, peak {gib(peak)}", "; ".join(errors), not errors)
    )
    return rows


def join_rows(eng: Any, setup: Setup) -> list[Row]:
    """(c3) a lane that joins a running loop gives the pixels of the same job alone."""
    from sticker_maker.engine.pipeline import JobResult, Request

    rows: list[Row] = []
    steps = max(3, setup.short_steps)
    for sampler in JOIN_SAMPLERS:
        first = job(eng, setup, seed=31, steps=steps, scheduler=sampler)
        late = job(eng, setup, seed=32, steps=steps, scheduler=sampler, prompt="a dog")
        alone = [pixels(eng.generate(j))[0] for j in (first, late)]
        got: dict[str, JobResult] = {}
        # the late job joins at the first step boundary (``more`` is asked between steps)
        queue = [Request(late, _keep(got, "late"))]
        eng.run([Request(first, _keep(got, "first"))], lambda q=queue: [q.pop()] if q else [])
        errors = [r.error for r in got.values() if r.error is not None]
        if errors or len(got) != 2:
            rows.append((f"join vs alone: {sampler}", "error", str(errors[:1]), False))
            continue
        together = [pixels(got[k].images)[0] for k in ("first", "late")]
        diffs = [int(abs(a - b).max()) for a, b in zip(alone, together, strict=True)]
        rows.append(
            (
                f"join vs alone: {sampler}",
                f"max |Δ| {diffs[0]} (running), {diffs[1]} (joiner) of 255",
                f"batched {got['late'].batched}; target ≤ 2",
                max(diffs) <= 2,
            )
        )
    return rows


def _keep(into: dict[str, Any], key: str) -> Callable[[Any], None]:
    return lambda result: into.__setitem__(key, result)


def weights_hash(pipe: Any) -> str:
    """A hash of every base weight of the UNet and both text encoders (LoRA layers left out)."""
    torch = _torch()
    digest = hashlib.sha256()
    ints = {2: torch.int16, 4: torch.int32}
    with torch.no_grad():
        for component in ("unet", "text_encoder", "text_encoder_2"):
            model = getattr(pipe, component, None)
            if model is None:
                continue
            for name, param in model.named_parameters():
                if "lora_" in name:
                    continue
                flat = param.detach().reshape(-1).view(ints[param.element_size()])
                total = int(flat.to(torch.int64).sum())
                digest.update(f"{name}:{total};".encode())
    return digest.hexdigest()[:16]


def lora_cycle_rows(eng: Any, setup: Setup) -> list[Row]:
    """(c4) LoRA A ↔ B ↔ scale 0 cycles: base weights back to pristine at every scale 0,
    and each switch timed."""
    torch = _torch()
    models = eng.models
    a, b = eng.presets.get("sticker-maker"), eng.presets.get("fullsize-lora-b")
    models.prepare(a, 0.0)
    pipe = models.prepare(b, 0.0).pipe  # both adapters loaded, none in effect
    pristine = weights_hash(pipe)
    cycle = [(a, 1.0), (b, 1.0), (a, 0.0), (a, 1.0), (a, 0.5), (b, 1.0), (b, 0.0)] * 2
    times, clean, switches = [], True, []
    for preset, scale in cycle:
        began = time.perf_counter()
        models.prepare(preset, scale)
        if cuda(eng):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
        switches.append(f"{'A' if preset is a else 'B'}{scale:g}")
        if scale == 0.0:
            clean &= weights_hash(pipe) == pristine
    return [
        (
            "LoRA A ↔ B ↔ 0 cycles",
            f"{len(cycle)} switches, median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s",
            f"base weights pristine at every scale 0: {clean}; {' → '.join(switches[:7])} x2",
            clean,
        )
    ]


class _StepClock:
    """Seconds from a job's start to each of its steps, from the engine's progress callback
    (outside the compiled UNet: hooks on a compiled module would break its graph)."""

    def __init__(self, on_cuda: bool) -> None:
        self.cuda = on_cuda
        self.began = time.perf_counter()
        self.marks: list[float] = []

    def __call__(self, _done: int, _total: int) -> None:
        if self.cuda:
            _torch().cuda.synchronize()
        self.marks.append(time.perf_counter() - self.began)

    def steps(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


def compile_rows(setup: Setup, budget: Callable[[], float]) -> list[Row]:
    """(c5) compile on: seconds to the first step, and the graphs compiled under joiners, a
    second sampler and guidance off (each new graph is a recompile a user's job waits for)."""
    torch = _torch()
    from torch._dynamo.utils import counters

    from sticker_maker.engine.pipeline import Request

    def graphs() -> int:
        return int(counters["stats"].get("unique_graphs", 0))

    before = graphs()
    began = time.perf_counter()
    eng = engine(setup, compile=True)
    try:
        eng.warm("sticker-maker")  # the engine may compile (warm up) here
        load = time.perf_counter() - began
        at_load = graphs() - before
        clock = _StepClock(cuda(eng))
        eng.generate(job(eng, setup, steps=4), on_progress=clock)
        first_step = clock.marks[0] if clock.marks else float("nan")
        after_first = graphs() - before

        def joiners() -> None:
            queue = [Request(job(eng, setup, seed=9, steps=4), lambda _r: None)]
            first = Request(job(eng, setup, seed=8, steps=4), lambda _r: None)
            eng.run([first], lambda: [queue.pop()] if queue else [])

        mixes = [
            ("a joiner", joiners),
            (
                "3 jobs at once",
                lambda: eng.generate_many([job(eng, setup, seed=i) for i in range(3)]),
            ),
            ("DPM++ 2M Karras", lambda: eng.generate(job(eng, setup, scheduler="DPM++ 2M Karras"))),
            ("no guidance", lambda: eng.generate(job(eng, setup, preset="sticker-maker-fast"))),
        ]
        done = []
        for name, run in mixes:
            if budget() < 45:
                done.append(f"{name}: skipped (budget)")
                continue
            run()
            done.append(f"{name} → {graphs() - before}")
        clock = _StepClock(cuda(eng))
        eng.generate(job(eng, setup), on_progress=clock)
        warm = statistics.median(clock.steps()) if len(clock.marks) > 1 else float("nan")
        config = torch._dynamo.config
        limit = getattr(config, "recompile_limit", getattr(config, "cache_size_limit", "?"))
    finally:
        drop(eng)
    total = graphs() - before
    return [
        (
            "compile on: load / first step of the first job",
            f"{load:.1f} s / {first_step:.1f} s",
            f"graphs at load {at_load}, after the first job {after_first}; "
            f"warm: {warm * 1000:.0f} ms per step",
            None,
        ),
        (
            "compile on: graphs after joiners, samplers",
            f"{total} graphs",
            f"{'; '.join(done)}; recompile limit {limit}; want: no new graph per mix",
            total <= max(at_load, 1) + 1,
        ),
    ]


def offload_rows(setup: Setup) -> list[Row]:
    """(c5) ``--offload model``: a lane decodes between steps; the step after each decode
    is timed against the others."""
    from sticker_maker.engine.pipeline import Request

    eng = engine(setup, offload="model")
    preset = "sticker-maker" if cuda(eng) else "fullsize-nolora"  # peft+offload needs a GPU
    try:
        pipe = pipe_of(eng, preset)
        events: list[tuple[str, float]] = []
        timings = fullsize.Timings(pipe, cuda(eng))
        handles = [
            pipe.unet.register_forward_hook(lambda *_: events.append(("step", timings.unet[-1]))),
            pipe.vae.decoder.register_forward_hook(lambda *_: events.append(("decode", 0.0))),
        ]
        reset_peak(eng)
        steps = max(4, setup.short_steps)
        # the second job joins after the first step, so the first one finishes (and is
        # decoded) one step before it: a decode falls between two of its steps
        first, late = (job(eng, setup, preset=preset, seed=i, steps=steps) for i in range(2))
        queue = [Request(late, lambda _r: None)]
        eng.run([Request(first, lambda _r: None)], lambda: [queue.pop()] if queue else [])
        peak = peak_gib(eng)
        for handle in handles:
            handle.remove()
        timings.close()
    finally:
        drop(eng)
    after = [
        events[i + 1][1]
        for i, e in enumerate(events[:-1])
        if e[0] == "decode" and events[i + 1][0] == "step"
    ]
    others = [
        t
        for i, (kind, t) in enumerate(events)
        if kind == "step" and (i == 0 or events[i - 1][0] != "decode")
    ]
    if not after or not others:
        return [("offload model: step after a decode", "no decode between steps", "", None)]
    a, o = statistics.median(after), statistics.median(others[1:] or others)
    return [
        (
            "offload model: step after a decode vs others",
            f"{a * 1000:.0f} vs {o * 1000:.0f} ms",
            f"peak VRAM {gib(peak)} (target ≤ 12 GiB); the UNet should stay put during decodes",
            (a < 1.5 * o) and (peak is None or peak <= 12),
        )
    ]
