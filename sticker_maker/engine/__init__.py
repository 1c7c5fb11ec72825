"""The model engine: diffusers SDXL + LoRA. Imports torch lazily (only when used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sticker_maker.engine.pipeline import Engine, GeneratedImage

__all__ = ["Engine", "GeneratedImage"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in __all__:
        from sticker_maker.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
