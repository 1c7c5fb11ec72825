"""The engine on tiny real-format models (CPU): samplers, batches, LoRA switching and fusing,
the model cache, upscale + refine, cancel, and the memory/precision options."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels
from devices import engine_options
from PIL import Image

from sticker_maker.errors import InvalidInput, JobCanceled, ModelUnavailable
from sticker_maker.params import JobInput, parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets
from sticker_maker.schedulers import SCHEDULER_NAMES

torch = pytest.importorskip("torch")

from sticker_maker.engine import upscale as upscale_mod  # noqa: E402
from sticker_maker.engine.pipeline import Engine, _explain_out_of_memory  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(
    tiny_models: TinyModels, upscale_models: Any, tmp_path_factory: pytest.TempPathFactory
) -> PresetRegistry:
    from tiny_models import build_tiny_lora

    root = tmp_path_factory.mktemp("engine")
    other_lora = build_tiny_lora(
        tiny_models.sdxl, root / "other.safetensors", layout="kohya", seed=7
    )
    other_base = root / "other-sdxl"
    shutil.copytree(tiny_models.sdxl, other_base)
    path = root / "presets.toml"
    path.write_text(
        f"""
[presets.a]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_diffusers}"
scheduler = "Euler"
steps = 2
width = 64
height = 64
upscaler = "{upscale_models.esrgan}"
refiner = "{upscale_models.refiner}"
upscale_tile = 64
upscale_padding = 8

[presets.b]
base = "{tiny_models.sdxl}"
lora = "{other_lora}"
steps = 2
width = 64
height = 64

[presets.plain]
base = "{tiny_models.sdxl}"
steps = 2
width = 64
height = 64

[presets.own-vae]
base = "{tiny_models.sdxl}"
vae = "{tiny_models.sdxl / "vae"}"
steps = 2
width = 64
height = 64

[presets.other-base]
base = "{other_base}"
steps = 2
width = 64
height = 64
"""
    )
    return load_presets(path)


def job(registry: PresetRegistry, **fields: Any) -> JobInput:
    return resolve(parse_request({"preset": "a", "prompt": "cat", "seed": 5, **fields}), registry)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def run(engine: Engine, registry: PresetRegistry, **fields: Any) -> list[Any]:
    return engine.generate(job(registry, **fields))


def one(engine: Engine, registry: PresetRegistry, **fields: Any) -> np.ndarray:
    return pixels(run(engine, registry, **fields)[0].image)


@pytest.fixture(scope="module")
def engine(registry: PresetRegistry) -> Engine:
    """LoRAs unfused (the CPU default)."""
    return Engine(registry, options=engine_options(fuse_lora="off"))


@pytest.fixture(scope="module")
def fused(registry: PresetRegistry) -> Engine:
    """LoRAs fused into the weights (the GPU default), on the CPU."""
    return Engine(registry, options=engine_options(fuse_lora="on"))


# -- samplers and seeds -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_sampler_runs_and_is_reproducible_from_its_seed(
    engine: Engine, registry: PresetRegistry, name: str
) -> None:
    first = one(engine, registry, scheduler=name, seed=11)
    again = one(engine, registry, scheduler=name, seed=11)
    other = one(engine, registry, scheduler=name, seed=12)
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1


@pytest.mark.parametrize("name", ["Euler a", "DPM++ SDE Karras", "DPM++ 2M SDE Karras"])
def test_four_samples_in_one_call_each_reproducible_alone(
    engine: Engine, registry: PresetRegistry, name: str
) -> None:
    calls: list[tuple[int, int]] = []
    batch = engine.generate(
        job(registry, scheduler=name, seed=100, samples=4),
        on_progress=lambda step, total: calls.append((step, total)),
    )
    assert [g.seed for g in batch] == [100, 101, 102, 103]
    total = calls[-1][1]  # 2 steps (3 timesteps for the second-order SDE sampler)
    assert calls == [(step, total) for step in range(1, total + 1)]  # one batched call
    images = [pixels(g.image) for g in batch]
    for i in range(4):
        for j in range(i):
            assert np.abs(images[i] - images[j]).mean() > 1
    for generated, image in zip(batch, images, strict=True):
        alone = one(engine, registry, scheduler=name, seed=generated.seed)
        # Batched and single calls differ by ~1e-5 in latents: at most a rounding step.
        assert np.abs(alone - image).max() <= 2


def test_seed_wraps_at_two_to_the_32(registry: PresetRegistry) -> None:
    assert job(registry, seed=2**32 - 1, samples=2).seeds() == [2**32 - 1, 0]


def test_cancel_stops_at_the_next_step(engine: Engine, registry: PresetRegistry) -> None:
    steps: list[int] = []
    with pytest.raises(JobCanceled):
        engine.generate(
            job(registry, steps=8),
            on_progress=lambda step, _total: steps.append(step),
            should_cancel=lambda: len(steps) >= 3,
        )
    assert steps == [1, 2, 3]
    # The engine is usable right after a cancel.
    assert one(engine, registry).shape == (64, 64, 3)


# -- LoRA switching, fusing, model cache --------------------------------------------------


def test_presets_sharing_a_base_switch_loras_without_reloading(registry: PresetRegistry) -> None:
    engine = Engine(registry, cache_size=1, options=engine_options())
    a = one(engine, registry, preset="a")
    b = one(engine, registry, preset="b")
    plain = one(engine, registry, preset="plain")
    assert engine.base_loads == 1
    assert np.abs(a - b).mean() > 1 and np.abs(a - plain).mean() > 1
    assert np.array_equal(one(engine, registry, preset="a"), a)
    assert np.array_equal(one(engine, registry, preset="a", lora_scale=0), plain)
    loaded = engine.cache.peek("base", registry.get("a").base)
    assert loaded.lora.loads == 2  # each LoRA file read once
    # A different base evicts the least recently used one (cache size 1).
    one(engine, registry, preset="other-base")
    assert engine.base_loads == 2
    assert engine.cache.keys("base") == [registry.get("other-base").base]
    one(engine, registry, preset="plain")
    assert engine.base_loads == 3


def test_fused_lora_matches_unfused_and_switches_cleanly(
    engine: Engine, fused: Engine, registry: PresetRegistry
) -> None:
    sequence = [("a", 1.0), ("b", 1.0), ("a", 0.5), ("plain", None), ("a", 1.0), ("a", 0.0)]
    for preset, scale in sequence:
        extra = {"lora_scale": scale} if scale is not None else {}
        want = one(engine, registry, preset=preset, **extra)
        got = one(fused, registry, preset=preset, **extra)
        assert np.abs(want - got).max() <= 2, (preset, scale)
    state = fused.cache.peek("base", registry.get("a").base).lora
    assert state.fuses == 4 and not state.fused  # lora_scale 0 left nothing fused


def test_unfusing_restores_the_base_weights_exactly(
    fused: Engine, registry: PresetRegistry
) -> None:
    fresh = Engine(registry, options=engine_options())
    plain = one(fresh, registry, preset="plain")
    for preset in ("a", "b", "a"):
        one(fused, registry, preset=preset)
    assert np.array_equal(one(fused, registry, preset="plain"), plain)


def test_attention_stays_on_sdpa_after_loras_are_loaded_and_fused(
    fused: Engine, registry: PresetRegistry
) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    one(fused, registry, preset="b")
    pipe = fused.cache.peek("base", registry.get("b").base).pipe
    processors = pipe.unet.attn_processors
    assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors.values())


def test_preset_vae_is_loaded_once_and_swapped_per_preset(
    engine: Engine, registry: PresetRegistry
) -> None:
    loaded = engine.cache.peek("base", registry.get("plain").base)
    plain = one(engine, registry, preset="plain")
    with_vae = one(engine, registry, preset="own-vae")
    assert np.array_equal(plain, with_vae)  # the same weights, loaded from the vae folder
    assert loaded.pipe.vae is loaded.vaes[str(registry.get("own-vae").vae)]
    one(engine, registry, preset="plain")
    assert loaded.pipe.vae is loaded.original_vae


def test_model_cpu_offload_gives_the_same_image(engine: Engine, registry: PresetRegistry) -> None:
    # On the CPU "offload" moves nothing, but the hooks and the re-hooking after a VAE swap
    # run. (Loading a LoRA into an offloaded pipeline needs a GPU: diffusers re-enables
    # offload on its own "accelerator", which a CPU-only machine lacks.)
    offloaded = Engine(registry, options=engine_options(offload="model"))
    for preset in ("own-vae", "plain"):
        want = one(engine, registry, preset=preset)
        assert np.abs(one(offloaded, registry, preset=preset) - want).max() <= 2


def test_compile_option_compiles_the_unet_in_place(registry: PresetRegistry) -> None:
    from diffusers import UNet2DConditionModel

    compiled = Engine(registry, options=engine_options(compile=True))
    compiled.warm("plain")
    unet = compiled.cache.peek("base", registry.get("plain").base).pipe.unet
    assert isinstance(unet, UNet2DConditionModel)  # LoRA loading and fusing still find it
    assert unet._compiled_call_impl is not None


# -- out of memory ------------------------------------------------------------------------


def test_a_model_that_does_not_fit_gives_an_actionable_error(
    registry: PresetRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import StableDiffusionXLPipeline

    engine = Engine(registry, options=engine_options())
    one(engine, registry, preset="other-base")
    failures = iter([torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")])

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return original(self, *args, **kwargs)

    original = StableDiffusionXLPipeline.to
    monkeypatch.setattr(StableDiffusionXLPipeline, "to", to)
    # First try runs out of memory: the cached base is dropped and the load retried.
    one(engine, registry, preset="plain")
    assert engine.cache.keys("base") == [registry.get("plain").base]

    def always(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise MemoryError()

    monkeypatch.setattr(StableDiffusionXLPipeline, "to", always)
    with pytest.raises(ModelUnavailable) as info:
        one(engine, registry, preset="other-base")
    message = info.value.message
    assert str(registry.get("other-base").base) in message
    assert "--offload model" in message and "--pipeline-cache 1" in message


def test_out_of_memory_while_generating_names_the_fixes(
    engine: Engine, registry: PresetRegistry
) -> None:
    with (
        pytest.raises(ModelUnavailable, match=r"4 image.*1024x1024 upscaled.*--offload model"),
        _explain_out_of_memory(
            job(registry, samples=4, width=1024, height=1024, upscale=True), engine.placement
        ),
    ):
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_nan_pixels_are_an_error_naming_the_fp16_vae(
    engine: Engine, registry: PresetRegistry
) -> None:
    with pytest.raises(ModelUnavailable, match="sdxl-vae-fp16-fix"):
        engine._to_image(np.full((8, 8, 3), np.nan, dtype=np.float32), registry.get("a"))


# -- upscale + refine ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def upscaled(engine: Engine, registry: PresetRegistry) -> dict[str, Any]:
    calls: list[tuple[int, int]] = []
    spec = job(registry, width=128, height=128, upscale=True, upscale_steps=3, seed=9)
    result = engine.generate(spec, on_progress=lambda s, t: calls.append((s, t)))
    return {"job": spec, "images": result, "progress": calls}


def test_upscale_gives_exactly_twice_the_size(upscaled: dict[str, Any]) -> None:
    (generated,) = upscaled["images"]
    assert generated.image.size == (256, 256)
    assert generated.seed == 9


def test_upscale_progress_covers_the_refine_steps(upscaled: dict[str, Any]) -> None:
    # 2 denoising steps, then 256 px in 80 px windows (64 + 2*8): 4x4 tiles in 4 batched
    # calls of 3 Euler steps each (upscale_steps=3 at denoise 0.2 = 15 scheduled steps).
    progress = upscaled["progress"]
    assert progress[-1] == (14, 14)
    assert [s for s, _ in progress] == list(range(1, 15))


def test_upscale_runs_esrgan_then_a_refine_that_changes_the_image(
    engine: Engine, registry: PresetRegistry, upscaled: dict[str, Any]
) -> None:
    preset = registry.get("a")
    base = one(engine, registry, width=128, height=128, seed=9)
    esrgan_only = upscale_mod.esrgan_2x(
        engine.models.upscaler(preset), Image.fromarray(base.astype(np.uint8)), tile=64, padding=8
    )
    assert esrgan_only.size == (256, 256)
    refined = pixels(upscaled["images"][0].image)
    assert np.abs(refined - pixels(esrgan_only)).mean() > 0.5
    assert engine.cache.loads["upscaler"] == 1 and engine.cache.loads["refiner"] == 1


def test_upscale_is_reproducible_and_batches_samples(
    engine: Engine, registry: PresetRegistry, upscaled: dict[str, Any]
) -> None:
    again = engine.generate(upscaled["job"])[0].image
    assert np.array_equal(pixels(again), pixels(upscaled["images"][0].image))
    two = run(engine, registry, upscale=True, upscale_steps=2, samples=2)
    assert [g.image.size for g in two] == [(128, 128), (128, 128)]
    assert [g.seed for g in two] == [5, 6]


def test_cancel_during_refine(engine: Engine, registry: PresetRegistry) -> None:
    steps: list[int] = []
    with pytest.raises(JobCanceled):
        engine.generate(
            job(registry, upscale=True, upscale_steps=4),
            on_progress=lambda step, _total: steps.append(step),
            should_cancel=lambda: len(steps) >= 3,  # step 3 is the first refine step
        )
    assert steps == [1, 2, 3]


def test_upscale_without_upscaler_or_refiner_is_rejected(
    engine: Engine, registry: PresetRegistry
) -> None:
    with pytest.raises(InvalidInput) as info:
        job(registry, preset="plain", upscale=True)
    assert info.value.errors[0].field == "upscale"
    message = info.value.message
    assert "'plain'" in message and "upscaler" in message and "refiner" in message
    assert "[presets.plain]" in message


def test_upscaler_hub_file_offline_names_the_fix(registry: PresetRegistry, tmp_path: Path) -> None:
    from sticker_maker.engine.loading import upscaler_file

    with pytest.raises(ModelUnavailable, match="huggingface-cli download Kim2091/AnimeSharp 4x"):
        upscaler_file("Kim2091/AnimeSharp/4x-AnimeSharp.pth", "sticker-maker")
    with pytest.raises(ModelUnavailable, match=r"owner/repo/file\.pth"):
        upscaler_file("Kim2091/AnimeSharp", "sticker-maker")
    with pytest.raises(ModelUnavailable, match="not a loadable local path"):
        upscaler_file(str(tmp_path / "missing.pth"), "sticker-maker")
