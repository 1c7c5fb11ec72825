"""Import spandrel without torchvision (and without einops if it is missing).

Why this exists
---------------
``import spandrel`` imports *every* architecture it supports (``spandrel/__init__.py`` ->
``__helpers/main_registry.py``), and two of them import third-party packages at module
level that this service cannot or does not install:

- ``torchvision`` (spandrel 0.4.2 declares it): only two architectures touch it,
  ``architectures/LaMa/__arch/LaMa.py`` (``from torchvision.transforms.functional import
  InterpolationMode, rotate``, used by LaMa's learnable rotation wrapper) and
  ``architectures/RestoreFormer/__init__.py`` (``... import normalize as tv_normalize``).
  No CPU build of torchvision matching torch 2.13 exists on our index; the CUDA build fails
  on import next to CPU torch and then breaks diffusers and peft imports, so it must not be
  installed. spandrel is therefore installed with ``--no-deps``.
- ``einops`` (also declared by spandrel; pure Python, torch-free) is imported at module level
  by about fifteen transformer architectures (DAT, HAT, SCUNet, ...), starting with CRAFT, so
  without it ``import spandrel`` fails before it even reaches torchvision. The right fix is to
  install einops (``pip install einops``; it has no dependencies). It is stubbed here only when
  it is absent, so that the upscalers we use (ESRGAN/RRDBNet, Compact, SPAN, ...) still work.

What it does (the least invasive thing)
---------------------------------------
For each missing package, it puts a tiny stand-in module into ``sys.modules`` *only for the
duration of* ``import spandrel``, then removes it again, so no other library (transformers,
diffusers, peft probe ``torchvision``/``einops`` availability) ever sees a fake package. The
spandrel modules keep the names they bound from the stand-ins:

- ``torchvision.transforms.functional.normalize`` is implemented exactly (``(x - mean) / std``
  per channel), so RestoreFormer works; ``InterpolationMode`` is a plain enum;
  ``rotate`` raises ``ImportError`` when called, so only running LaMa fails, with a clear message.
- every einops function/layer raises ``ImportError`` when called or built, naming the fix.

If the real package is importable it is used and nothing is stubbed. Nothing is patched inside
spandrel itself.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["import_spandrel"]


def _missing(package: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the {package!r} package, which is not installed "
        f"(spandrel was imported through sticker_maker.engine._spandrel without it)."
    )


class _InterpolationMode(enum.Enum):
    """Stand-in for ``torchvision.transforms.InterpolationMode`` (values as in torchvision)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _normalize(
    tensor: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    inplace: bool = False,
) -> torch.Tensor:
    """``torchvision.transforms.functional.normalize`` for tensors: per-channel (x - m) / s."""
    import torch

    if not inplace:
        tensor = tensor.clone()
    m = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    return tensor.sub_(m).div_(s)


def _rotate(*_args: Any, **_kwargs: Any) -> Any:
    raise _missing("torchvision", "spandrel's LaMa architecture (rotate)")


def _torchvision_stubs() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode  # type: ignore[attr-defined]
    functional.normalize = _normalize  # type: ignore[attr-defined]
    functional.rotate = _rotate  # type: ignore[attr-defined]
    transforms.InterpolationMode = _InterpolationMode  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    return {
        "torchvision": root,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


def _einops_stubs() -> dict[str, types.ModuleType]:
    def fn(name: str) -> Any:
        def missing(*_args: Any, **_kwargs: Any) -> Any:
            raise _missing("einops", f"einops.{name} (used by some spandrel architectures)")

        missing.__name__ = name
        return missing

    def layer(name: str) -> type:
        def init(self: Any, *_args: Any, **_kwargs: Any) -> None:
            raise _missing("einops", f"einops.layers.torch.{name}")

        return type(name, (), {"__init__": init})

    root = types.ModuleType("einops")
    for name in ("rearrange", "reduce", "repeat", "einsum", "pack", "unpack"):
        setattr(root, name, fn(name))
    layers = types.ModuleType("einops.layers")
    layers_torch = types.ModuleType("einops.layers.torch")
    for name in ("Rearrange", "Reduce", "EinMix"):
        setattr(layers_torch, name, layer(name))
    layers.torch = layers_torch  # type: ignore[attr-defined]
    root.layers = layers  # type: ignore[attr-defined]
    return {"einops": root, "einops.layers": layers, "einops.layers.torch": layers_torch}


def _is_installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def import_spandrel() -> types.ModuleType:
    """Import and return the ``spandrel`` module, working without torchvision/einops.

    Idempotent and cheap after the first call. See the module docstring for what is stubbed.
    """
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]

    stubs: dict[str, types.ModuleType] = {}
    if not _is_installed("torchvision"):
        stubs.update(_torchvision_stubs())
    if not _is_installed("einops"):
        stubs.update(_einops_stubs())

    sys.modules.update(stubs)
    try:
        import spandrel
    finally:
        for name, module in stubs.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return spandrel
