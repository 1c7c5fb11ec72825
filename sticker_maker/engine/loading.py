"""Find and load weights: a Hub id (downloaded on first use, with progress) or a local path.

Any failure becomes :class:`ModelUnavailable` with a message that names the
model and says how to point the preset at a local copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sticker_maker.errors import ModelUnavailable


@dataclass(frozen=True)
class LoraSource:
    """Where a LoRA lives: a local file, or a Hub repo plus a file name in it."""

    path_or_repo: str
    weight_name: str | None

    @property
    def key(self) -> str:
        return f"{self.path_or_repo}::{self.weight_name or ''}"


def lora_source(lora: str, weight_name: str | None) -> LoraSource:
    """A local file, ``owner/repo`` + ``weight_name``, or ``owner/repo/file.safetensors``."""
    path = Path(lora).expanduser()
    if path.exists():
        if path.is_dir():
            return LoraSource(str(path), weight_name)
        return LoraSource(str(path.parent), path.name)
    parts = lora.split("/")
    if len(parts) >= 3 and lora.endswith((".safetensors", ".bin")):
        return LoraSource("/".join(parts[:2]), "/".join(parts[2:]))
    return LoraSource(lora, weight_name)


def _looks_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).expanduser().exists()


def _hint(kind: str, ref: str, preset: str, key: str) -> str:
    if _looks_local(ref):
        return (
            f"{kind} {ref!r} for preset {preset!r} is not a loadable local path. "
            f"Check that {key} in your presets file points at an existing "
            + ("diffusers folder." if key in ("base", "refiner") else "file.")
        )
    return (
        f"{kind} {ref!r} for preset {preset!r} could not be fetched from the Hugging Face Hub. "
        f"If this machine is offline, download it elsewhere (huggingface-cli download {ref}) "
        f'and set {key} = "/path/to/it" under [presets.{preset}] in your presets file '
        f"(--presets or STICKER_MAKER_PRESETS)."
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f" ({type(exc).__name__}: {text[0][:300]})" if text else f" ({type(exc).__name__})"


def load_sdxl(base: str, preset: str, dtype: torch.dtype) -> Any:
    """``StableDiffusionXLPipeline`` from a Hub id or a local diffusers folder."""
    from diffusers import StableDiffusionXLPipeline

    if _looks_local(base) and not (Path(base).expanduser() / "model_index.json").is_file():
        raise ModelUnavailable(_hint("base model", base, preset, "base"))
    try:
        return StableDiffusionXLPipeline.from_pretrained(
            str(Path(base).expanduser()) if _looks_local(base) else base, dtype=dtype
        )
    except Exception as exc:  # hub, network and format errors come in many classes
        raise ModelUnavailable(_hint("base model", base, preset, "base") + _reason(exc)) from exc


def load_lora(pipe: Any, source: LoraSource, adapter_name: str, preset: str) -> None:
    """Load a LoRA (diffusers or kohya key layout) into ``pipe`` under ``adapter_name``."""
    try:
        pipe.load_lora_weights(
            source.path_or_repo, weight_name=source.weight_name, adapter_name=adapter_name
        )
    except Exception as exc:
        ref = source.path_or_repo + (f"/{source.weight_name}" if source.weight_name else "")
        raise ModelUnavailable(_hint("LoRA", ref, preset, "lora") + _reason(exc)) from exc
