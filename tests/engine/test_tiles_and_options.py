"""Tile planning and blending; engine options from flags and environment (no models)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sticker_maker.config import Settings
from sticker_maker.engine import tiles
from sticker_maker.engine.options import EngineOptions
from sticker_maker.errors import InvalidInput
from sticker_maker.presets import load_presets


@pytest.mark.parametrize(
    ("size", "tile", "padding"),
    [(2048, 512, 32), (1536, 512, 32), (1024, 512, 32), (256, 64, 8), (128, 64, 8), (64, 512, 32)],
)
def test_tile_plan_covers_the_image_with_equal_overlapping_windows(
    size: int, tile: int, padding: int
) -> None:
    windows = tiles.plan(size, size // 2, tile, padding)
    covered = np.zeros((size // 2, size), dtype=int)
    for w in windows:
        assert (w.width, w.height) == (windows[0].width, windows[0].height)
        assert w.x % 8 == 0 and w.y % 8 == 0 and w.width % 8 == 0
        assert w.width <= tile + 2 * padding
        covered[w.y : w.y + w.height, w.x : w.x + w.width] += 1
    assert covered.min() >= 1
    xs = sorted({w.x for w in windows})
    for left, right in itertools.pairwise(xs):
        assert left + windows[0].width - right >= 2 * padding  # overlap to blend across


def test_tile_plan_for_a_1024_sticker_upscaled_2x() -> None:
    windows = tiles.plan(2048, 2048, 512, 32)
    assert len(windows) == 16 and windows[0].width == 576
    assert {w.x for w in windows} == {0, 488, 976, 1472}


def test_blending_identical_tiles_reproduces_the_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((200, 264, 3), dtype=np.float32)
    for scale in (1, 2):
        big = image.repeat(scale, axis=0).repeat(scale, axis=1)
        blender = tiles.Blender(264 * scale, 200 * scale, 3, ramp=16)
        for w in tiles.plan(264, 200, 64, 16):
            rows = slice(w.y * scale, (w.y + w.height) * scale)
            region = big[rows, w.x * scale : (w.x + w.width) * scale]
            blender.add(w, region, scale)
        assert np.allclose(blender.result(), big, atol=1e-6)


def test_blending_feathers_across_the_overlap() -> None:
    windows = tiles.plan(128, 64, 56, 8)
    assert len(windows) == 2
    blender = tiles.Blender(128, 64, 1, ramp=8)
    blender.add(windows[0], np.zeros((64, 72, 1), np.float32))
    blender.add(windows[1], np.ones((64, 72, 1), np.float32))
    row = blender.result()[32, :, 0]
    assert row[0] == 0 and row[-1] == 1
    assert np.all(np.diff(row) >= -1e-6)  # a monotone ramp, no seam
    assert 0 < row[64] < 1


def test_engine_options_from_environment_and_flags() -> None:
    env = {
        "STICKER_MAKER_DEVICE": "cuda:1",
        "STICKER_MAKER_DTYPE": "BF16",
        "STICKER_MAKER_OFFLOAD": "model",
        "STICKER_MAKER_FUSE_LORA": "0",
        "STICKER_MAKER_COMPILE": "1",
    }
    options = EngineOptions.from_env(env)
    assert options == EngineOptions("cuda:1", "bf16", "model", "off", True)
    assert EngineOptions.from_env(env, offload="none", compile=False).offload == "none"
    assert EngineOptions.from_env({}) == EngineOptions()
    assert EngineOptions(**options.to_dict()) == options


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"STICKER_MAKER_OFFLOAD": "disk"}, "allowed: none, model, sequential"),
        ({"STICKER_MAKER_DTYPE": "int8"}, "STICKER_MAKER_DTYPE"),
        ({"STICKER_MAKER_COMPILE": "maybe"}, "STICKER_MAKER_COMPILE='maybe'"),
        ({"STICKER_MAKER_DEVICE": "tpu"}, "cuda:N"),
        ({"STICKER_MAKER_FUSE_LORA": "sometimes"}, "auto, on, off"),
    ],
)
def test_bad_engine_options_name_the_setting(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment.replace("(", r"\(").replace("+", r"\+")):
        EngineOptions.from_env(env)


def test_pipeline_cache_size_and_engine_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STICKER_MAKER_PIPELINE_CACHE_SIZE", "4")
    monkeypatch.setenv("STICKER_MAKER_OFFLOAD", "sequential")
    settings = Settings.load()
    assert settings.pipeline_cache_size == 4 and settings.engine.offload == "sequential"
    assert Settings.load(pipeline_cache_size=1).pipeline_cache_size == 1


def test_placement_defaults_on_cpu() -> None:
    torch = pytest.importorskip("torch")
    from sticker_maker.engine.device import choose

    cpu = choose(EngineOptions(device="cpu"))
    assert (cpu.dtype, cpu.fuse_lora, cpu.offload) == (torch.float32, False, "none")
    forced = choose(EngineOptions(device="cpu", dtype="bfloat16", fuse_lora="on"))
    assert (forced.dtype, forced.fuse_lora) == (torch.bfloat16, True)


def test_preset_upscale_keys_are_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.toml"
    path.write_text('[presets.x]\nbase = "/m"\nupscale_tile = 100\nupscale_denoise = 0\n')
    with pytest.raises(InvalidInput) as info:
        load_presets(path)
    assert "upscale_tile 100" in info.value.message and "upscale_denoise" in info.value.message
    path.write_text('[presets.x]\nbase = "/m"\nvae = "/v"\nupscale_tile = 256\n')
    preset = load_presets(path).get("x")
    assert (preset.vae, preset.upscale_tile, preset.upscale_padding) == ("/v", 256, 32)


def test_serve_rejects_a_bad_engine_flag_before_starting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conftest import cli

    result = cli("serve", "--offload", "disk", "--port", "1", home=tmp_path / "h", check=False)
    assert result.returncode != 0
    assert "allowed: none, model, sequential" in result.stderr
    assert "Traceback" not in result.stderr
