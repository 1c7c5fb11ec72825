"""Batching across jobs in the engine: one UNet call per step for several jobs, jobs that
join between steps, each job's pixels as if it ran alone (and as diffusers' own pipeline
gives them), its own seeds, progress, cancel and share of the time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels
from devices import engine_options

from sticker_maker.errors import JobCanceled
from sticker_maker.params import JobInput, batch_key, parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets

pytest.importorskip("torch")

from sticker_maker.engine.pipeline import Engine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> PresetRegistry:
    path: Path = tmp_path_factory.mktemp("batching") / "presets.toml"
    path.write_text(
        f"""
[presets.a]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_diffusers}"
scheduler = "Euler"
steps = 2
width = 64
height = 64
"""
    )
    return load_presets(path)


@pytest.fixture(scope="module")
def engine(registry: PresetRegistry) -> Engine:
    return Engine(registry, options=engine_options(fuse_lora="off"))


def job(registry: PresetRegistry, **fields: Any) -> JobInput:
    return resolve(parse_request({"preset": "a", "prompt": "cat", "seed": 5, **fields}), registry)


def pixels(images: list[Any]) -> list[np.ndarray]:
    return [np.asarray(g.image, dtype=np.int16) for g in images]


class FakeClock:
    """``time`` for the engine modules: ``perf_counter`` advances one second per call."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    import sticker_maker.engine.cache as cache
    import sticker_maker.engine.denoise as denoise
    import sticker_maker.engine.models as models
    import sticker_maker.engine.pipeline as pipeline

    clock = FakeClock()
    for module in (cache, denoise, models, pipeline):
        monkeypatch.setattr(module, "time", clock)
    return clock


def test_jobs_batched_in_one_call_give_the_pixels_they_give_alone(
    engine: Engine, registry: PresetRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [
        job(registry, prompt="a red cat", seed=1),
        job(registry, prompt="a blue dog", seed=2, samples=2),
        job(registry, prompt="a green frog", seed=40),
    ]
    assert len({batch_key(j) for j in jobs}) == 1
    steps: list[list[tuple[int, int]]] = [[], [], []]
    clock = fake_clock(monkeypatch)  # the engine's durations, without a loaded machine's noise
    began = clock.perf_counter()
    results = engine.generate_many(
        jobs,
        on_progress=[lambda s, t, n=n: steps[n].append((s, t)) for n in range(3)],
    )
    wall = clock.perf_counter() - began
    assert [r.error for r in results] == [None, None, None]
    assert [[g.seed for g in r.images] for r in results] == [[1], [2, 3], [40]]
    # one call: every job saw each of the 2 steps once
    assert steps == [[(1, 2), (2, 2)]] * 3
    for each, result in zip(jobs, results, strict=True):
        alone = pixels(engine.generate(each))
        # Batched and single calls differ by ~1e-5 in latents: at most a rounding step.
        for a, b in zip(alone, pixels(result.images), strict=True):
            assert np.abs(a - b).max() <= 2
    # per-job seeds really differ
    first, second = pixels(results[0].images)[0], pixels(results[2].images)[0]
    assert np.abs(first - second).mean() > 1
    # time: each job's own span in the engine; billed its share of the shared steps (by
    # image count) plus its own encode and decode, so together no more than the call
    assert all(r.seconds > 0 and 0 < r.share <= r.seconds for r in results)
    assert sum(r.share for r in results) <= wall
    assert results[1].share > results[0].share  # 2 images


def test_cancelling_one_job_keeps_the_others(engine: Engine, registry: PresetRegistry) -> None:
    jobs = [job(registry, seed=7), job(registry, seed=8), job(registry, seed=9)]
    results = engine.generate_many(jobs, should_cancel=[None, lambda: True, None])
    assert isinstance(results[1].error, JobCanceled) and not results[1].images
    for n in (0, 2):
        assert results[n].error is None
        alone = pixels(engine.generate(jobs[n]))[0]
        assert np.abs(alone - pixels(results[n].images)[0]).max() <= 2


def test_all_cancelled_stops_the_call(engine: Engine, registry: PresetRegistry) -> None:
    results = engine.generate_many(
        [job(registry, seed=1), job(registry, seed=2)], should_cancel=[lambda: True] * 2
    )
    assert all(isinstance(r.error, JobCanceled) for r in results)


def test_incompatible_jobs_run_in_separate_calls_and_a_bad_one_fails_alone(
    engine: Engine, registry: PresetRegistry
) -> None:
    small = job(registry, seed=3)
    negative = job(registry, seed=3, negative_prompt="blurry")
    bad = small.model_copy(update={"width": 65})
    results = engine.generate_many([small, negative, bad])
    assert results[0].error is None and results[1].error is None
    assert "multiples of 8" in str(results[2].error)
    assert np.abs(pixels(results[0].images)[0] - pixels(results[1].images)[0]).mean() > 0
    assert results[0].share <= results[0].seconds  # alone in its call


@pytest.mark.parametrize(
    "scheduler", ["Euler", "Euler a", "DPM++ 2M Karras", "DPM++ SDE Karras", "Heun", "DDIM"]
)
def test_lanes_give_the_pixels_of_diffusers_own_pipeline(
    engine: Engine, registry: PresetRegistry, scheduler: str
) -> None:
    """The denoising loop is the SDXL pipeline's __call__ taken apart: same pixels."""
    import torch

    from sticker_maker.engine.schedulers import make_scheduler

    each = job(registry, seed=11, samples=2, scheduler=scheduler, negative_prompt="blurry")
    mine = pixels(engine.generate(each))
    loaded = engine.models.base(registry.get("a"))
    pipe = loaded.pipe
    preset = registry.get("a")
    pipe.scheduler = make_scheduler(scheduler, loaded.scheduler_config, seeds=[11, 12])
    with torch.inference_mode():
        out = pipe(
            prompt=[preset.render_prompt(each.prompt)] * 2,
            negative_prompt=[preset.render_negative(each.negative_prompt)] * 2,
            width=each.width,
            height=each.height,
            num_inference_steps=each.steps,
            guidance_scale=each.guidance_scale,
            generator=[torch.Generator("cpu").manual_seed(s) for s in (11, 12)],
            output_type="np",
        ).images
    theirs = [(np.clip(a, 0, 1) * 255 + 0.5).astype(np.int16) for a in out]
    for a, b in zip(mine, theirs, strict=True):
        assert np.abs(a - b).max() <= 1


def test_a_job_joins_a_running_loop_between_steps(
    engine: Engine, registry: PresetRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Continuous batching: a job that arrives while others denoise joins at the next step
    boundary, takes its own steps, and leaves when done; all pixels as alone."""
    from sticker_maker.engine.pipeline import JobResult, Request

    first = job(registry, seed=21, steps=4)
    late = job(registry, seed=22, steps=4, prompt="a dog")
    other = job(registry, seed=23, steps=4, width=72)  # another batch key: waits
    done: dict[str, JobResult] = {}
    order: list[str] = []
    steps: dict[str, list[int]] = {"first": [], "late": [], "other": []}

    def request(name: str, j: JobInput) -> Request:
        def on_done(result: JobResult) -> None:
            done[name] = result
            order.append(name)

        return Request(j, on_done, lambda s, _t, name=name: steps[name].append(s))

    asked = []

    def more() -> list[Request]:
        asked.append(len(steps["first"]))
        if len(asked) == 2:  # after the first job's 2nd step
            return [request("late", late), request("other", other)]
        return []

    fake_clock(monkeypatch)
    engine.run([request("first", first)], more)
    assert order == ["first", "late", "other"]
    assert all(done[n].error is None for n in done)
    assert steps == {"first": [1, 2, 3, 4], "late": [1, 2, 3, 4], "other": [1, 2, 3, 4]}
    # the late job joined when the first had 2 steps left: it finished 2 steps later
    for name, j in (("first", first), ("late", late), ("other", other)):
        alone = pixels(engine.generate(j))[0]
        assert np.abs(alone - pixels(done[name].images)[0]).max() <= 2
    # steps taken together are shared: neither is billed its whole span
    assert done["first"].share < done["first"].seconds
