"""Engine fixtures: a tiny ESRGAN and a tiny SD 1.5 refiner, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny models gain nothing from more, and on a busy machine
    OpenMP threads spin against each other (measured: 0.27 s vs 2-7 s per tiny image)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class UpscaleModels:
    esrgan: Path
    refiner: Path


@pytest.fixture(scope="session")
def upscale_models(tmp_path_factory: pytest.TempPathFactory) -> UpscaleModels:
    from tiny_models import build_tiny_esrgan, build_tiny_sd15_img2img

    root = tmp_path_factory.mktemp("upscale-models")
    return UpscaleModels(
        esrgan=build_tiny_esrgan(root / "4x-tiny.pth", scale=4, fmt="pth"),
        refiner=build_tiny_sd15_img2img(root / "tiny-sd15"),
    )
