"""``bench/fullsize.py``: the real SDXL architecture built without downloads.

The builder runs here on a tiny configuration of the same layout (seconds); the real one
(``bench/configs/sdxl-base-1.0.json``) is checked on the meta device (no memory) and, with
``STICKER_MAKER_RUN_SLOW=1``, built and run end to end on the CPU (about 5 minutes of CPU on
2 cores, more on a shared machine; peak RSS ~18 GiB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import _sdxl  # noqa: E402

TINY = REPO / "bench" / "configs" / "sdxl-tiny.json"
FULLSIZE_ARGS = ("--device", "cpu", "--size", "256", "--steps", "2", "--json")


def test_published_configuration_gives_the_published_parameter_counts() -> None:
    config = _sdxl.load_config()
    assert "stabilityai/stable-diffusion-xl-base-1.0" in config["source"]
    counts = _sdxl.count_params(_sdxl.meta_models(config))
    assert counts == {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    }
    _sdxl.check_params(config, counts)  # no error
    with pytest.raises(ValueError, match="unet"):
        _sdxl.check_params(config, {**counts, "unet": 1})


def test_lora_covers_every_transformer_block_of_the_real_layout() -> None:
    targets = _sdxl.lora_targets(_sdxl.meta_models(_sdxl.load_config()))
    # 70 transformer blocks (1·2·2 + 2·10 down, 10 mid, 3·10 + 3·2 up) x 10 Linears each;
    # 12 + 32 text-encoder layers x 6 Linears.
    assert len(targets["unet"]) == 700
    assert (len(targets["te1"]), len(targets["te2"])) == (72, 192)
    paths = {path for path, _, _ in targets["unet"]}
    assert "mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj" in paths
    assert "up_blocks.0.attentions.2.transformer_blocks.9.attn2.to_k" in paths
    assert not any("proj_in" in p or "resnets" in p for p in paths)


def test_tokenizer_vocabulary_has_clip_layout() -> None:
    vocab, merges = _sdxl.clip_vocab(49_408)
    assert len(vocab) == 49_408
    assert len(set(vocab.values())) == 49_408
    assert vocab["<|endoftext|>"] == 49_407  # the highest id, as SDXL's pooling expects
    assert all(a + b in vocab for a, b in merges)


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _sdxl.ensure_built(TINY, rank=8, cache=tmp_path_factory.mktemp("fullsize"))


def test_built_folder_loads_with_lora_through_the_engine(tiny_built: dict, tmp_path: Path) -> None:
    import fullsize  # type: ignore[import-not-found]
    from safetensors import safe_open

    base = Path(tiny_built["base"])
    with safe_open(str(base / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        key = next(iter(f.keys()))
        assert f.get_tensor(key).dtype.is_floating_point
        assert str(f.get_tensor(key).dtype) == "torch.float16"
    with safe_open(str(base / "text_encoder" / "model.safetensors"), "pt") as f:
        assert all(k.startswith("text_model.") for k in f.keys())  # noqa: SIM118 (real keys)
    with safe_open(tiny_built["lora"], "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert meta["ss_network_dim"] == "8"
    assert any(k.startswith("lora_unet_input_blocks_") and "_ff_net_0_proj." in k for k in keys)
    assert any(k.startswith("lora_te1_text_model_encoder_layers_0_mlp_fc1.") for k in keys)
    assert any(k.startswith("lora_te2_") and k.endswith(".alpha") for k in keys)

    lora = tiny_built["lora"]
    presets = fullsize.write_presets(tmp_path / "presets.toml", tiny_built["base"], lora, lora)
    built = {**tiny_built, "presets": str(presets)}
    result = fullsize.run(built, device="cpu", size=64, steps=2)
    assert result["unet_params"] == json.loads(TINY.read_text())["expected_params"]["unet"]
    assert result["lora_layout"] == "kohya" and result["lora_rank"] == 8
    assert result["unet_calls"] == 2
    assert result["finite_output"] is True
    assert result["sticker_mode"] == "RGBA"
    # the 4-step preset: the built-in recipe (Euler, trailing, no guidance) on these weights
    fast = fullsize.run(built, device="cpu", size=64, preset="sticker-maker-fast")
    assert (fast["steps"], fast["unet_calls"], fast["guidance_scale"]) == (4, 4, 0.0)
    assert result["seconds_per_step"] > 0 and result["peak_rss_gib"] > 0


def test_every_lora_layer_is_loaded_by_diffusers(tiny_built: dict) -> None:
    import torch
    from diffusers import StableDiffusionXLPipeline
    from peft.tuners.tuners_utils import BaseTunerLayer

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_built["base"], dtype=torch.float32)
    lora = Path(tiny_built["lora"])
    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="sticker")
    layers = tiny_built["lora_layers"]
    for component, key in (("unet", "unet"), ("text_encoder", "te1"), ("text_encoder_2", "te2")):
        model = getattr(pipe, component)
        found = sum(isinstance(m, BaseTunerLayer) for m in model.modules())
        assert found == layers[key], component


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("STICKER_MAKER_RUN_SLOW") != "1",
    reason="builds and runs the real-size SDXL (minutes, ~18 GiB): STICKER_MAKER_RUN_SLOW=1",
)
def test_real_size_sdxl_runs_on_the_cpu() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fullsize.py"), *FULLSIZE_ARGS],
        capture_output=True,
        text=True,
        timeout=25 * 60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unet_params"] == 2_567_463_684
    assert result["lora_layout"] == "kohya" and result["lora_rank"] == 64
    assert result["lora_layers"]["unet"] == 700
    assert result["finite_output"] is True
    assert result["peak_rss_gib"] < 22
