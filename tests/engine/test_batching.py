"""Batching across jobs in the engine: one pipeline call for several jobs, each job's
pixels as if it ran alone, its own seeds, progress, cancel and share of the time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels

from sticker_maker.errors import JobCanceled
from sticker_maker.params import JobInput, batch_key, parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets

pytest.importorskip("torch")

from sticker_maker.engine.options import EngineOptions
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
    return Engine(registry, options=EngineOptions(device="cpu", fuse_lora="off"))


def job(registry: PresetRegistry, **fields: Any) -> JobInput:
    return resolve(parse_request({"preset": "a", "prompt": "cat", "seed": 5, **fields}), registry)


def pixels(images: list[Any]) -> list[np.ndarray]:
    return [np.asarray(g.image, dtype=np.int16) for g in images]


def test_jobs_batched_in_one_call_give_the_pixels_they_give_alone(
    engine: Engine, registry: PresetRegistry
) -> None:
    jobs = [
        job(registry, prompt="a red cat", seed=1),
        job(registry, prompt="a blue dog", seed=2, samples=2),
        job(registry, prompt="a green frog", seed=40),
    ]
    assert len({batch_key(j) for j in jobs}) == 1
    steps: list[list[tuple[int, int]]] = [[], [], []]
    results = engine.generate_many(
        jobs,
        on_progress=[lambda s, t, n=n: steps[n].append((s, t)) for n in range(3)],
    )
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
    # time: the same call for all, shared by image count (4 images: 1/4, 2/4, 1/4)
    call = results[0].seconds
    assert call > 0 and all(r.seconds == call for r in results)
    assert [r.share / call for r in results] == pytest.approx([0.25, 0.5, 0.25])


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
    assert results[0].share == results[0].seconds  # alone in its call
