"""The tiny-model builders write real on-disk formats that diffusers and spandrel load.

Everything runs offline: ``HF_HUB_OFFLINE=1`` and every socket connection in this module
raises, so a loader that tried the Hub would fail loudly.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiny_models import (
    build_tiny_esrgan,
    build_tiny_lora,
    build_tiny_sd15_img2img,
    build_tiny_sdxl,
    diffusers_unet_module_to_kohya,
)

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

PROMPT = "a cat sticker, die-cut, white border"


@pytest.fixture(scope="module", autouse=True)
def _no_network() -> Iterator[None]:
    """Any attempt to open a network connection fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("network access attempted in an offline test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def sdxl_dir(models_dir: Path) -> Path:
    return build_tiny_sdxl(models_dir / "sdxl")


@pytest.fixture(scope="module")
def lora_files(sdxl_dir: Path, models_dir: Path) -> dict[str, Path]:
    return {
        layout: build_tiny_lora(sdxl_dir, models_dir / f"lora-{layout}.safetensors", layout=layout)
        for layout in ("diffusers", "kohya")
    }


def _load_sdxl(folder: Path) -> Any:
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def sdxl_pipe(sdxl_dir: Path) -> Any:
    """Shared read-only pipeline (tests that load LoRAs make their own)."""
    return _load_sdxl(sdxl_dir)


def _generate(pipe: Any, seed: int = 0) -> Any:
    """A 64x64 image at 2 steps as a float numpy array in 0..1, shape (64, 64, 3)."""
    out = pipe(
        PROMPT,
        num_inference_steps=2,
        height=64,
        width=64,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.images[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- SDXL


def test_sdxl_folder_has_the_real_layout(sdxl_dir: Path) -> None:
    from safetensors import safe_open

    index = json.loads((sdxl_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    for name in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "unet", "vae"):
        assert index[name][0] is not None, name
        assert (sdxl_dir / name).is_dir(), name
    assert index["scheduler"] == ["diffusers", "EulerDiscreteScheduler"]
    # Hub-style tokenizer files, as in stabilityai/stable-diffusion-xl-base-1.0.
    for tok in ("tokenizer", "tokenizer_2"):
        names = {p.name for p in (sdxl_dir / tok).iterdir()}
        assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= names
        assert "tokenizer.json" not in names
    # Real CLIP text-encoder checkpoints carry the text_model. prefix.
    for enc in ("text_encoder", "text_encoder_2"):
        with safe_open(str(sdxl_dir / enc / "model.safetensors"), "pt") as f:
            keys = [k for k in f.keys() if k != "text_projection.weight"]  # noqa: SIM118
        assert keys and all(k.startswith("text_model.") for k in keys), enc
    sched = json.loads((sdxl_dir / "scheduler" / "scheduler_config.json").read_text())
    assert sched["beta_schedule"] == "scaled_linear"
    assert (sched["beta_start"], sched["beta_end"]) == (0.00085, 0.012)
    assert (sched["steps_offset"], sched["timestep_spacing"]) == (1, "leading")
    size = sum(len(b) for b in _files(sdxl_dir).values())
    assert 1_000_000 < size < 8_000_000


def test_sdxl_tokenizer_reads_the_merges(sdxl_pipe: Any) -> None:
    tok = sdxl_pipe.tokenizer
    vocab = tok.get_vocab()
    ids = tok("Sticker").input_ids
    assert ids == [tok.bos_token_id, vocab["sticker</w>"], tok.eos_token_id]
    assert sdxl_pipe.text_encoder.config.eos_token_id == tok.eos_token_id
    assert sdxl_pipe.text_encoder.config.vocab_size == len(tok)


def test_sdxl_loads_offline_and_generates(sdxl_pipe: Any) -> None:
    import numpy as np
    from diffusers import EulerDiscreteScheduler

    assert isinstance(sdxl_pipe.scheduler, EulerDiscreteScheduler)
    assert sdxl_pipe.vae_scale_factor == 8
    image = _generate(sdxl_pipe)
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()
    assert image.std() > 0.02
    assert len(np.unique(image.round(2))) > 20


def test_sdxl_same_seed_same_pixels_other_seed_differs(sdxl_pipe: Any) -> None:
    import numpy as np

    a, b, c = _generate(sdxl_pipe, 7), _generate(sdxl_pipe, 7), _generate(sdxl_pipe, 8)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 0.05


def test_builders_are_deterministic(
    tmp_path: Path, sdxl_dir: Path, lora_files: dict[str, Path]
) -> None:
    again = build_tiny_sdxl(tmp_path / "sdxl")
    assert _files(again) == _files(sdxl_dir)
    for layout, first in lora_files.items():
        second = build_tiny_lora(again, tmp_path / first.name, layout=layout)
        assert second.read_bytes() == first.read_bytes(), layout
    other_seed = build_tiny_lora(again, tmp_path / "seed1.safetensors", layout="kohya", seed=1)
    assert other_seed.read_bytes() != lora_files["kohya"].read_bytes()
    for fmt in ("pth", "safetensors"):
        a = build_tiny_esrgan(tmp_path / "a" / f"x4.{fmt}", fmt=fmt)
        b = build_tiny_esrgan(tmp_path / "b" / f"x4.{fmt}", fmt=fmt)
        assert a.read_bytes() == b.read_bytes(), fmt


# --------------------------------------------------------------------------- LoRA


@pytest.mark.parametrize(
    ("module", "layers_per_block", "expected"),
    [
        # SDXL base (layers_per_block 2): examples checked against real kohya SDXL LoRAs.
        (
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
            2,
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
        ),
        (
            "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_out.0",
            2,
            "lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_out_0",
        ),
        (
            "mid_block.attentions.0.transformer_blocks.3.attn1.to_k",
            2,
            "lora_unet_middle_block_1_transformer_blocks_3_attn1_to_k",
        ),
        (
            "up_blocks.0.attentions.2.transformer_blocks.0.attn2.to_v",
            2,
            "lora_unet_output_blocks_2_1_transformer_blocks_0_attn2_to_v",
        ),
        (
            "up_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q",
            2,
            "lora_unet_output_blocks_3_1_transformer_blocks_1_attn1_to_q",
        ),
        # The tiny UNet (layers_per_block 1).
        (
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
            1,
            "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q",
        ),
        (
            "up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k",
            1,
            "lora_unet_output_blocks_1_1_transformer_blocks_0_attn2_to_k",
        ),
    ],
)
def test_unet_module_to_kohya_name(module: str, layers_per_block: int, expected: str) -> None:
    assert diffusers_unet_module_to_kohya(module, layers_per_block) == expected


def test_unet_module_to_kohya_rejects_non_attention() -> None:
    with pytest.raises(ValueError):
        diffusers_unet_module_to_kohya("down_blocks.0.resnets.0.conv1", 1)


def test_lora_files_have_the_expected_keys(lora_files: dict[str, Path]) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(lora_files["diffusers"]), "pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
        d_keys = set(f.keys())
    assert meta["unet.lora_alpha"] == 8 and meta["unet.r"] == 4
    assert meta["text_encoder.lora_alpha"] == 8 and meta["text_encoder_2.lora_alpha"] == 8
    assert meta["unet.target_modules"] == sorted(meta["unet.target_modules"])
    assert (
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.lora.down.weight"
        in d_keys
    )
    assert (
        "text_encoder.text_model.encoder.layers.2.self_attn.out_proj.lora_linear_layer.up.weight"
        in d_keys
    )
    assert any(k.startswith("text_encoder_2.text_model.") for k in d_keys)

    kohya = load_file(str(lora_files["kohya"]))
    modules = {k.split(".")[0] for k in kohya}
    # 4 transformer blocks x 2 attentions x 4 projections + 2 encoders x 3 layers x 4.
    assert len(modules) == 32 + 24
    assert len(kohya) == 3 * len(modules)
    assert {m.split("_")[1] for m in modules} == {"unet", "te1", "te2"}
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn2_to_out_0" in modules
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in modules
    assert "lora_te2_text_model_encoder_layers_2_self_attn_out_proj" in modules
    assert all(float(kohya[f"{m}.alpha"]) == 8.0 for m in modules)
    # Same seed -> the same tensors in both files.
    diffusers_sd = load_file(str(lora_files["diffusers"]))
    a = diffusers_sd[
        "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora.up.weight"
    ]
    b = kohya["lora_unet_middle_block_1_transformer_blocks_0_attn2_to_out_0.lora_up.weight"]
    assert torch.equal(a, b) and a.abs().sum() > 0
    a = diffusers_sd[
        "text_encoder.text_model.encoder.layers.1.self_attn.v_proj.lora_linear_layer.down.weight"
    ]
    b = kohya["lora_te1_text_model_encoder_layers_1_self_attn_v_proj.lora_down.weight"]
    assert torch.equal(a, b)


def _adapter_tensors(pipe: Any, adapter: str) -> dict[str, dict[str, Any]]:
    from peft.utils import get_peft_model_state_dict

    return {
        name: get_peft_model_state_dict(getattr(pipe, name), adapter_name=adapter)
        for name in ("unet", "text_encoder", "text_encoder_2")
    }


def test_lora_layouts_load_change_output_and_agree(
    sdxl_dir: Path, lora_files: dict[str, Path]
) -> None:
    import numpy as np

    pipe = _load_sdxl(sdxl_dir)
    base = _generate(pipe)
    base_embeds = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)[0]

    pipe.load_lora_weights(str(lora_files["diffusers"]), adapter_name="d")
    with_d = _generate(pipe)
    embeds_d = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)[0]
    pipe.unload_lora_weights()
    assert np.array_equal(_generate(pipe), base)

    pipe.load_lora_weights(str(lora_files["kohya"]), adapter_name="k")
    with_k = _generate(pipe)
    pipe.load_lora_weights(str(lora_files["diffusers"]), adapter_name="d")

    # Both layouts put every weight in the same module of all three models.
    loaded_d, loaded_k = _adapter_tensors(pipe, "d"), _adapter_tensors(pipe, "k")
    for name in loaded_d:
        assert loaded_d[name].keys() == loaded_k[name].keys(), name
        assert len(loaded_d[name]) == (64 if name == "unet" else 24), name
        for key, tensor in loaded_d[name].items():
            assert torch.equal(tensor, loaded_k[name][key]), (name, key)
    # The text-encoder part is live: the prompt embeddings change.
    assert (embeds_d - base_embeds).abs().max() > 1e-3

    assert np.abs(with_d - base).max() > 0.05
    assert np.abs(with_d - with_k).max() <= 0.002

    pipe.set_adapters(["d", "k"], adapter_weights=[0.0, 0.0])
    assert np.abs(_generate(pipe) - base).max() <= 1e-6
    pipe.set_adapters(["k"], adapter_weights=[1.0])
    assert np.abs(_generate(pipe) - with_k).max() <= 1e-6

    pipe.unload_lora_weights()
    assert np.array_equal(_generate(pipe), base)


# --------------------------------------------------------------------------- SD 1.5


def test_sd15_img2img_loads_and_runs(models_dir: Path) -> None:
    import numpy as np
    from diffusers import StableDiffusionImg2ImgPipeline
    from PIL import Image

    folder = build_tiny_sd15_img2img(models_dir / "sd15")
    assert "tokenizer.json" not in {p.name for p in (folder / "tokenizer").iterdir()}
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.safety_checker is None
    assert pipe.unet.config.cross_attention_dim == 32

    rng = np.random.default_rng(0)
    init = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))

    def run(seed: int) -> Any:
        return pipe(
            PROMPT,
            image=init,
            strength=0.6,
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).images[0]

    out = run(0)
    assert out.shape == (64, 64, 3)
    assert np.isfinite(out).all() and out.std() > 0.02
    assert np.abs(out - np.asarray(init) / 255.0).mean() > 0.01
    assert np.array_equal(out, run(0))


# --------------------------------------------------------------------------- ESRGAN


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_esrgan_loads_via_spandrel_and_upscales(models_dir: Path, fmt: str) -> None:
    from sticker_maker.engine._spandrel import import_spandrel

    spandrel = import_spandrel()
    path = build_tiny_esrgan(models_dir / f"esrgan-x4.{fmt}", fmt=fmt)
    if fmt == "pth":
        raw = torch.load(path, map_location="cpu", weights_only=True)
        assert set(raw) == {"params_ema"} and "body.0.rdb1.conv1.weight" in raw["params_ema"]
    desc = spandrel.ModelLoader().load_from_file(path)
    assert isinstance(desc, spandrel.ImageModelDescriptor)
    assert desc.architecture.id == "ESRGAN"
    assert desc.scale == 4 and desc.input_channels == 3 and desc.output_channels == 3
    assert "16nf" in desc.tags and "1nb" in desc.tags

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = desc(x)
    assert tuple(y.shape) == (1, 3, 128, 128)
    assert torch.isfinite(y).all() and y.std() > 0.02
    # Mostly inside (0, 1): a real image, not one clipped flat.
    assert ((y > 0) & (y < 1)).float().mean() > 0.9


@pytest.mark.parametrize("scale", [2, 8])
def test_esrgan_other_scales(models_dir: Path, scale: int) -> None:
    from sticker_maker.engine._spandrel import import_spandrel

    desc = (
        import_spandrel()
        .ModelLoader()
        .load_from_file(build_tiny_esrgan(models_dir / f"esrgan-x{scale}.pth", scale=scale))
    )
    assert desc.scale == scale
    with torch.no_grad():
        assert tuple(desc(torch.rand(1, 3, 16, 16)).shape) == (1, 3, 16 * scale, 16 * scale)


def test_import_spandrel_leaves_no_fake_packages() -> None:
    import importlib.util

    from sticker_maker.engine._spandrel import import_spandrel

    spandrel = import_spandrel()
    assert import_spandrel() is spandrel
    for name in ("torchvision", "einops"):
        if importlib.util.find_spec(name) is None:
            assert name not in sys.modules, name
    if importlib.util.find_spec("torchvision") is None:
        from spandrel.architectures.LaMa.__arch import LaMa as lama_arch
        from spandrel.architectures.RestoreFormer import tv_normalize

        x = torch.tensor([[[0.0]], [[0.5]], [[1.0]]])
        assert torch.allclose(
            tv_normalize(x, [0.5] * 3, [0.5] * 3).flatten(), torch.tensor([-1.0, 0.0, 1.0])
        )
        with pytest.raises(ImportError, match="torchvision"):
            lama_arch.rotate(x, 0.0)
