"""LoRA stacks and fusing on tiny real-format models (CPU): several adapters with their own
weights, a fused stack that leaves no peft layer in the forward, exact switches without a
snapshot of the base, and the few-step preset (no guidance: one UNet pass per image)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels

from sticker_maker.params import JobInput, parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets

torch = pytest.importorskip("torch")

from sticker_maker.engine.options import EngineOptions  # noqa: E402
from sticker_maker.engine.pipeline import Engine  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> PresetRegistry:
    from tiny_models import build_tiny_lora

    root = tmp_path_factory.mktemp("stack")
    speed = build_tiny_lora(tiny_models.sdxl, root / "speed.safetensors", layout="kohya", seed=3)
    base = tiny_models.sdxl
    common = "steps = 2\nwidth = 64\nheight = 64\n"
    path = root / "presets.toml"
    path.write_text(
        f"""
[presets.style]
base = "{base}"
lora = "{tiny_models.lora_diffusers}"
scheduler = "Euler"
{common}
[presets.speed]
base = "{base}"
loras = [{{ lora = "{speed}", scale = 1.0 }}]
scheduler = "Euler"
{common}
[presets.stack]
base = "{base}"
lora = "{tiny_models.lora_diffusers}"
loras = [{{ lora = "{speed}", scale = 0.5 }}]
scheduler = "Euler"
{common}
[presets.plain]
base = "{base}"
scheduler = "Euler"
{common}
[presets.sticker-maker-fast]
base = "{base}"
lora = "{tiny_models.lora_kohya}"
loras = [{{ lora = "{speed}", scale = 1.0 }}]
"""
    )
    return load_presets(path)


def job(registry: PresetRegistry, **fields: Any) -> JobInput:
    request = {"preset": "style", "prompt": "cat", "seed": 5, "width": 64, "height": 64}
    return resolve(parse_request({**request, **fields}), registry)


def one(engine: Engine, registry: PresetRegistry, **fields: Any) -> np.ndarray:
    image = engine.generate(job(registry, **fields))[0].image
    return np.asarray(image, dtype=np.int16)


def peft_layers(pipe: Any) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(
        isinstance(m, BaseTunerLayer)
        for c in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2)
        for m in c.modules()
    )


def weights_digest(pipe: Any) -> str:
    digest = hashlib.sha256()
    for component in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        for name, tensor in sorted(component.state_dict().items()):
            if "lora_" not in name:  # the adapters' own factors are not base weights
                digest.update(name.replace(".base_layer", "").encode())  # wrapped or not
                digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def unfused(registry: PresetRegistry) -> Engine:
    return Engine(registry, options=EngineOptions(device="cpu", fuse_lora="off"))


@pytest.fixture(scope="module")
def fused(registry: PresetRegistry) -> Engine:
    return Engine(registry, options=EngineOptions(device="cpu", fuse_lora="on"))


def test_a_stack_mixes_its_loras_with_their_own_weights(
    unfused: Engine, fused: Engine, registry: PresetRegistry
) -> None:
    style, speed = one(unfused, registry, preset="style"), one(unfused, registry, preset="speed")
    stack = one(unfused, registry, preset="stack")
    plain = one(unfused, registry, preset="plain")
    for other in (style, speed, plain):
        assert np.abs(stack - other).mean() > 1
    # the job's lora_scale weights the main LoRA only: at 0 the stack is the other one alone
    half_speed = one(unfused, registry, preset="stack", lora_scale=0)
    assert np.abs(half_speed - speed).mean() > 1 and np.abs(half_speed - plain).mean() > 1
    pipe = unfused.cache.peek("base", registry.get("stack").base).pipe
    assert sorted(pipe.get_list_adapters()["unet"]) == sorted(
        unfused.cache.peek("base", registry.get("stack").base).lora.adapters.values()
    )
    # fused gives the same pixels (to a rounding step) for every one of them
    for preset, want in (("stack", stack), ("style", style), ("plain", plain)):
        assert np.abs(one(fused, registry, preset=preset) - want).max() <= 2, preset
    assert np.abs(one(fused, registry, preset="stack", lora_scale=0) - half_speed).max() <= 2


def test_a_fused_lora_leaves_no_peft_layer_in_the_forward(
    unfused: Engine, fused: Engine, registry: PresetRegistry
) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    one(fused, registry, preset="stack")
    pipe = fused.cache.peek("base", registry.get("stack").base).pipe
    assert peft_layers(pipe) == 0
    calls: list[str] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: calls.append(type(mod).__name__))
        for m in pipe.unet.modules()
    ]
    try:
        one(fused, registry, preset="stack")
    finally:
        for hook in hooks:
            hook.remove()
    assert calls and not any("lora" in name.lower() for name in calls)
    # unfused, the adapters are in the forward (the test above sees them when they are)
    one(unfused, registry, preset="stack")
    upipe = unfused.cache.peek("base", registry.get("stack").base).pipe
    assert any(isinstance(m, BaseTunerLayer) for m in upipe.unet.modules())
    # and with no LoRA at all, neither mode runs wrappers
    one(unfused, registry, preset="plain")
    assert peft_layers(upipe) == 0


def test_switching_fused_loras_and_scales_restores_the_base_bit_exactly_in_float16(
    registry: PresetRegistry,
) -> None:
    engine = Engine(registry, options=EngineOptions(device="cpu", dtype="float16", fuse_lora="on"))
    models = engine.models
    loaded = models.prepare(registry.get("plain"), 1.0)
    pristine = weights_digest(loaded.pipe)
    cycle = [("style", 1.0), ("stack", 0.7), ("style", 0.3), ("speed", 1.0), ("style", 0.0)]
    for _round in range(3):
        for preset, scale in cycle:
            models.prepare(registry.get(preset), scale)
            state = loaded.lora
            assert state.fused == (preset != "style" or scale != 0)
            # what is kept to unfuse exactly is less than a copy of the fused weights (the
            # tiny LoRAs are strong: their deltas are as large as the weights)
            assert state.restore_bytes < 0.8 * state.fused_weight_bytes or not state.fused
            assert peft_layers(loaded.pipe) == 0
        models.prepare(registry.get("plain"), 1.0)
        assert weights_digest(loaded.pipe) == pristine
    assert loaded.lora.loads == 2  # each LoRA file read once


def test_the_fast_preset_runs_without_guidance_and_batches_with_itself(
    fused: Engine, registry: PresetRegistry
) -> None:
    fast = registry.get("fast")
    assert (fast.steps, fast.guidance_scale, dict(fast.scheduler_options)) == (
        4,
        0.0,
        {"timestep_spacing": "trailing"},
    )
    pipe = fused.models.prepare(fast, 1.0).pipe
    batches: list[int] = []
    hook = pipe.unet.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    try:
        jobs = [job(registry, preset="fast", seed=s, prompt=f"cat {s}") for s in (1, 2)]
        results = fused.generate_many(jobs)
    finally:
        hook.remove()
    assert all(r.error is None for r in results), [r.error for r in results]
    assert [r.batched for r in results] == [2, 2]
    # 4 steps, one UNet pass per image (no unconditional half)
    assert batches == [2, 2, 2, 2]
    # trailing timesteps: the first step starts at the last training timestep
    from sticker_maker.engine.schedulers import make_scheduler

    scheduler = make_scheduler(
        "Euler", pipe.scheduler.config, options={"timestep_spacing": "trailing"}
    )
    scheduler.set_timesteps(4)
    assert scheduler.timesteps[0] == 999


def test_a_fuse_that_fails_halfway_leaves_the_base_weights_intact(
    registry: PresetRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sticker_maker.engine.lora import LoraState

    engine = Engine(registry, options=EngineOptions(device="cpu", fuse_lora="on"))
    loaded = engine.models.prepare(registry.get("plain"), 1.0)
    pristine = weights_digest(loaded.pipe)
    original = LoraState._delta
    calls = iter(range(1000))

    def failing(layer: Any) -> Any:
        if next(calls) == 10:  # the 11th layer runs out of memory
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(layer)

    monkeypatch.setattr(LoraState, "_delta", staticmethod(failing))
    with pytest.raises(torch.OutOfMemoryError):
        engine.models.prepare(registry.get("style"), 1.0)
    assert not loaded.lora.fused and weights_digest(loaded.pipe) == pristine
    monkeypatch.setattr(LoraState, "_delta", staticmethod(original))
    engine.models.prepare(registry.get("style"), 1.0)  # and it works afterwards
    assert loaded.lora.fused
    engine.models.prepare(registry.get("plain"), 1.0)
    assert weights_digest(loaded.pipe) == pristine
