"""The model engine: diffusers SDXL + LoRA, upscale + refine. Imports torch lazily.

``EngineOptions`` (device, dtype, offload, LoRA fusing, compile) is plain data and cheap to
import; ``Engine`` and ``GeneratedImage`` import torch and diffusers on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sticker_maker.engine.options import EngineOptions

if TYPE_CHECKING:
    from sticker_maker.engine.pipeline import Engine, GeneratedImage

__all__ = ["Engine", "EngineOptions", "GeneratedImage"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in ("Engine", "GeneratedImage"):
        from sticker_maker.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
