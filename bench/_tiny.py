"""Tiny models and a running service for benchmarks (built once into a cache folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("STICKER_MAKER_BENCH_CACHE", REPO / ".cache" / "bench"))


def tiny_presets() -> Path:
    """A presets file whose built-ins and 'tiny' preset use the tiny sticker model."""
    sys.path.insert(0, str(REPO / "tests"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from conftest import TinyModels, write_presets  # type: ignore[import-not-found]
    from tiny_models import (  # type: ignore[import-not-found]
        build_tiny_lora,
        build_tiny_sdxl,
        build_tiny_sticker_sdxl,
    )

    presets = CACHE / "presets.toml"
    if presets.exists():
        return presets
    CACHE.mkdir(parents=True, exist_ok=True)
    sdxl = build_tiny_sdxl(CACHE / "tiny-sdxl")
    models = TinyModels(
        sdxl=sdxl,
        lora_diffusers=build_tiny_lora(sdxl, CACHE / "lora-d.safetensors", layout="diffusers"),
        lora_kohya=build_tiny_lora(sdxl, CACHE / "lora-k.safetensors", layout="kohya"),
        sticker_sdxl=build_tiny_sticker_sdxl(CACHE / "tiny-sticker-sdxl"),
    )
    return write_presets(presets, models)
