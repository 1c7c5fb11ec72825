"""Find and load weights: a Hub id (downloaded on first use, with progress) or a local path.

Any failure becomes :class:`ModelUnavailable` with a message that names the model and
says how to point the preset at a local copy. Models are loaded on the CPU here;
:func:`place` moves them to the device (or sets up CPU offload), and a model that does
not fit raises :class:`DoesNotFit` so the engine can evict others and retry.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sticker_maker.engine.device import Placement, is_out_of_memory, memory_note
from sticker_maker.errors import ModelUnavailable

UPSCALER_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


class DoesNotFit(ModelUnavailable):
    """A model ran out of device (or host) memory while loading or placing it."""


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


def _hint(kind: str, ref: str, preset: str, key: str, exc: BaseException | None = None) -> str:
    """What failed and what to do about it (plus the underlying reason, if any)."""
    reason = _reason(exc) if exc is not None else ""
    if exc is not None and Path(ref).expanduser().exists():
        return f"{kind} {ref!r} for preset {preset!r} could not be loaded{reason}"
    if _looks_local(ref):
        return (
            f"{kind} {ref!r} for preset {preset!r} is not a loadable local path. "
            f"Check that {key} in your presets file points at an existing "
            + ("diffusers folder." if key in ("base", "refiner", "vae") else "file.")
            + reason
        )
    parts = ref.split("/")
    # A Hub *file* (owner/repo/file.pth) is downloaded as "REPO FILE".
    what = f"{'/'.join(parts[:2])} {'/'.join(parts[2:])}" if len(parts) > 2 else ref
    return (
        f"{kind} {ref!r} for preset {preset!r} could not be fetched from the Hugging Face Hub. "
        f"If this machine is offline, download it elsewhere (huggingface-cli download {what}) "
        f'and set {key} = "/path/to/it" under [presets.{preset}] in your presets file '
        f"(--presets or STICKER_MAKER_PRESETS).{reason}"
    )


def _reason(exc: BaseException) -> str:
    """The error's first line, whole (only a runaway one is shortened, at a word break)."""
    text = str(exc).strip().splitlines()
    if not text:
        return f" ({type(exc).__name__})"
    return f" ({type(exc).__name__}: {textwrap.shorten(text[0], 2000, placeholder=' …')})"


def does_not_fit(kind: str, ref: str, placement: Placement) -> DoesNotFit:
    return DoesNotFit(
        f"{kind} {ref!r} does not fit in memory{memory_note(placement)}. Keep fewer models "
        "loaded (serve --pipeline-cache 1 / STICKER_MAKER_PIPELINE_CACHE_SIZE=1) or move weights "
        "to the CPU between uses (serve --offload model / STICKER_MAKER_OFFLOAD=model)."
    )


def _from_pretrained(
    cls: Any, kind: str, ref: str, preset: str, key: str, placement: Placement, **kwargs: Any
) -> Any:
    local = _looks_local(ref)
    folder = Path(ref).expanduser()
    marker = "config.json" if key == "vae" else "model_index.json"
    if local and not (folder / marker).is_file():
        raise ModelUnavailable(_hint(kind, ref, preset, key))
    try:
        return cls.from_pretrained(str(folder) if local else ref, dtype=placement.dtype, **kwargs)
    except Exception as exc:  # hub, network and format errors come in many classes
        if is_out_of_memory(exc):
            raise does_not_fit(kind, ref, placement) from exc
        raise ModelUnavailable(_hint(kind, ref, preset, key, exc)) from exc


def load_sdxl(base: str, preset: str, placement: Placement) -> Any:
    """``StableDiffusionXLPipeline`` (on the CPU) from a Hub id or a local diffusers folder."""
    from diffusers import StableDiffusionXLPipeline

    return _from_pretrained(
        StableDiffusionXLPipeline, "base model", base, preset, "base", placement
    )


def load_refiner(refiner: str, preset: str, placement: Placement) -> Any:
    """``StableDiffusionImg2ImgPipeline`` (an SD 1.5 checkpoint, no safety checker)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    return _from_pretrained(
        StableDiffusionImg2ImgPipeline,
        "refiner",
        refiner,
        preset,
        "refiner",
        placement,
        safety_checker=None,
        requires_safety_checker=False,
    )


def load_vae(vae: str, preset: str, placement: Placement) -> Any:
    """An ``AutoencoderKL`` folder or Hub id (e.g. ``madebyollin/sdxl-vae-fp16-fix``)."""
    from diffusers import AutoencoderKL

    return _from_pretrained(AutoencoderKL, "VAE", vae, preset, "vae", placement)


def load_lora(pipe: Any, source: LoraSource, adapter_name: str, preset: str) -> None:
    """Load a LoRA (diffusers or kohya key layout) into ``pipe`` under ``adapter_name``."""
    try:
        pipe.load_lora_weights(
            source.path_or_repo, weight_name=source.weight_name, adapter_name=adapter_name
        )
    except Exception as exc:
        ref = source.path_or_repo + (f"/{source.weight_name}" if source.weight_name else "")
        raise ModelUnavailable(_hint("LoRA", ref, preset, "lora", exc)) from exc


def upscaler_file(ref: str, preset: str) -> Path:
    """A local model file, or ``owner/repo/path/file.pth`` downloaded from the Hub."""
    path = Path(ref).expanduser()
    if _looks_local(ref):
        if not path.is_file():
            raise ModelUnavailable(_hint("upscaler", ref, preset, "upscaler"))
        return path
    parts = ref.split("/")
    if len(parts) < 3 or not ref.endswith(UPSCALER_SUFFIXES):
        raise ModelUnavailable(
            f"upscaler {ref!r} for preset {preset!r} must be a local file or a Hub file "
            f"'owner/repo/file.pth' (one of {', '.join(UPSCALER_SUFFIXES)})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))
    except Exception as exc:
        raise ModelUnavailable(_hint("upscaler", ref, preset, "upscaler", exc)) from exc


def load_upscaler(ref: str, preset: str, placement: Placement) -> Any:
    """An ESRGAN-family ``spandrel.ImageModelDescriptor`` on the device, in eval mode."""
    from sticker_maker.engine._spandrel import import_spandrel

    spandrel = import_spandrel()
    path = upscaler_file(ref, preset)
    try:
        model = spandrel.ModelLoader().load_from_file(path)
    except Exception as exc:
        raise ModelUnavailable(
            f"upscaler {ref!r} for preset {preset!r} is not a model spandrel can load"
            + _reason(exc)
        ) from exc
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise ModelUnavailable(
            f"upscaler {ref!r} for preset {preset!r} is a {type(model).__name__}, "
            "not an image-to-image upscaler"
        )
    dtype = placement.dtype
    if (dtype == torch.float16 and not model.supports_half) or (
        dtype == torch.bfloat16 and not model.supports_bfloat16
    ):
        dtype = torch.float32
    try:
        model.to(placement.device, dtype=dtype)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise does_not_fit("upscaler", ref, placement) from exc
        raise
    return model.eval()


def place(pipe: Any, kind: str, ref: str, placement: Placement) -> None:
    """Move a pipeline to the device, or set up CPU offload; :class:`DoesNotFit` on OOM."""
    try:
        if placement.offload == "model":
            pipe.enable_model_cpu_offload(device=placement.device)
            _decode_keeps_unet(pipe)
        elif placement.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=placement.device)
        else:
            pipe.to(placement.device)
    except Exception as exc:
        if is_out_of_memory(exc):  # the half-moved pipeline is dropped by the caller
            raise does_not_fit(kind, ref, placement) from exc
        raise
    pipe.set_progress_bar_config(disable=True)


def _decode_keeps_unet(pipe: Any) -> None:
    """Unchain the VAE from model offload's sequence (text encoders → UNet → VAE).

    In that chain the VAE's hook moves the UNet to the CPU whenever the VAE runs: with
    lanes finishing between steps (continuous batching) that moved the UNet (4.8 GiB)
    off the GPU at every decode and back at the next step. Unchained, the VAE (160 MiB)
    comes to the GPU at its first decode and stays; the UNet stays too.
    """
    from accelerate.hooks import CpuOffload

    hook = getattr(getattr(pipe, "vae", None), "_hf_hook", None)
    for one in getattr(hook, "hooks", None) or [hook]:
        if isinstance(one, CpuOffload):
            one.prev_module_hook = None
