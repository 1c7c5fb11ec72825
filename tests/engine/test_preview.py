"""Live previews: the tiny autoencoder's decode, and the denoising loop that calls it
every few steps for the lanes that want one, batched, without changing their pixels."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels
from devices import engine_options
from PIL import Image

from sticker_maker.engine.options import EngineOptions
from sticker_maker.errors import InvalidInput
from sticker_maker.params import parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets

torch = pytest.importorskip("torch")

from sticker_maker.engine.pipeline import Engine, JobResult, Request  # noqa: E402
from sticker_maker.engine.preview import (  # noqa: E402
    PreviewDecoder,
    load_preview_vae,
    strip_jpeg,
)


def test_decode_gives_small_images_that_follow_the_latents(tiny_taesd: Path) -> None:
    decoder = PreviewDecoder.load(str(tiny_taesd), 2, "cpu", torch.float32)
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    images = decoder.decode(latents)
    assert [(im.mode, im.size) for im in images] == [("RGB", (64, 64))] * 3
    pixels = [np.asarray(im, dtype=np.int16) for im in images]
    assert np.abs(pixels[0] - pixels[1]).max() > 0  # other latents, other pictures
    again = decoder.decode(latents[:1])
    assert np.abs(np.asarray(again[0], dtype=np.int16) - pixels[0]).max() <= 1
    # a 1024² image's latents decode straight to the preview size, not to 1024²
    large = decoder.decode(torch.randn(1, 4, 128, 96))
    assert large[0].size == (192, 256)


def test_strip_jpeg_puts_a_jobs_images_side_by_side() -> None:
    images = [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 48), "blue")]
    data = strip_jpeg(images)
    sheet = Image.open(io.BytesIO(data))
    assert sheet.format == "JPEG" and sheet.size == (128, 64)
    assert sheet.getpixel((10, 10))[0] > 200 and sheet.getpixel((100, 10))[2] > 200


def test_due_skips_the_last_step() -> None:
    decoder = PreviewDecoder(vae=None, every=2)
    assert [n for n in range(1, 7) if decoder.due(n, 6)] == [2, 4]


def test_a_folder_that_does_not_load_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput) as caught:
        load_preview_vae(str(tmp_path / "empty"))
    assert "STICKER_MAKER_PREVIEW_VAE" in caught.value.message
    assert str(tmp_path / "empty") in caught.value.message


def test_options_read_the_preview_settings() -> None:
    options = EngineOptions.from_env(
        {"STICKER_MAKER_PREVIEW_VAE": " /models/TAESDXL ", "STICKER_MAKER_PREVIEW_EVERY": "3"}
    )
    assert (options.preview_vae, options.preview_every, options.previews) == (
        "/models/TAESDXL",
        3,
        True,
    )
    assert not EngineOptions.from_env({"STICKER_MAKER_PREVIEW_VAE": "x"}).previews
    with pytest.raises(InvalidInput, match="STICKER_MAKER_PREVIEW_EVERY"):
        EngineOptions.from_env({"STICKER_MAKER_PREVIEW_EVERY": "often"})
    with pytest.raises(InvalidInput, match="preview_every"):
        EngineOptions(preview_every=-1)


@pytest.fixture(scope="module")
def registry(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> PresetRegistry:
    path: Path = tmp_path_factory.mktemp("previews") / "presets.toml"
    path.write_text(
        f"""
[presets.a]
base = "{tiny_models.sdxl}"
scheduler = "Euler"
steps = 5
width = 64
height = 64
"""
    )
    return load_presets(path)


def _run(engine: Engine, registry: PresetRegistry, previews: bool) -> tuple[list[Any], Any]:
    """Two jobs in one loop (2 images and 1); previews asked by the first only."""
    seen: list[tuple[int, list[Image.Image]]] = []
    steps: list[int] = [0]
    results: list[JobResult] = []
    asked = {"preset": "a", "prompt": "cat", "seed": 5, "samples": 2}
    first = resolve(parse_request(asked), registry)
    second = resolve(parse_request({"preset": "a", "prompt": "dog", "seed": 7}), registry)
    engine.run(
        [
            Request(
                first,
                results.append,
                lambda done, total: steps.__setitem__(0, done),
                on_preview=(lambda images: seen.append((steps[0], images))) if previews else None,
            ),
            Request(second, results.append),
        ]
    )
    return seen, results


@pytest.mark.slow
def test_the_loop_previews_every_n_steps_without_changing_pixels(
    registry: PresetRegistry, tiny_taesd: Path
) -> None:
    plain = Engine(registry, options=engine_options(fuse_lora="off"))
    with_previews = Engine(
        registry,
        options=engine_options(fuse_lora="off", preview_vae=str(tiny_taesd), preview_every=2),
    )
    seen, results = _run(with_previews, registry, previews=True)
    assert [step for step, _ in seen] == [2, 4]  # every 2nd of 5 steps, not after the last
    assert all(len(images) == 2 and images[0].size == (64, 64) for _, images in seen)
    _, expected = _run(plain, registry, previews=False)
    for got, want in zip(results, expected, strict=True):
        for a, b in zip(got.images, want.images, strict=True):
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
