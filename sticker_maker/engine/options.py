"""How the engine runs: device, precision, memory and speed options (data only, no torch).

Each option is a ``sticker-maker serve`` flag and an environment variable; flags win.

=====================  ==============================  ========================================
option                 environment variable            values (default first)
=====================  ==============================  ========================================
device                 ``STICKER_MAKER_DEVICE``        auto (cuda if present, else cpu), cuda,
                                                       cuda:N, cpu, mps
dtype                  ``STICKER_MAKER_DTYPE``         auto (float16 on CUDA, float32 on CPU),
                                                       float16, bfloat16, float32
offload                ``STICKER_MAKER_OFFLOAD``       none, model (enable_model_cpu_offload:
                                                       one model on the GPU at a time),
                                                       sequential (layer by layer; slowest)
fuse_lora              ``STICKER_MAKER_FUSE_LORA``     auto (on for CUDA), on, off
compile                ``STICKER_MAKER_COMPILE``       off, on (torch.compile of the UNet)
preview_vae            ``STICKER_MAKER_PREVIEW_VAE``   unset (no previews), or an
                                                       AutoencoderTiny Hub id / folder
                                                       (madebyollin/taesdxl)
preview_every          ``STICKER_MAKER_PREVIEW_EVERY`` 0 (no previews), or N: a preview
                                                       every N denoising steps
=====================  ==============================  ========================================

The model cache size is a service setting (``--pipeline-cache``,
``STICKER_MAKER_PIPELINE_CACHE_SIZE``; see :mod:`sticker_maker.config`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sticker_maker.errors import InvalidInput

ENV = {
    "device": "STICKER_MAKER_DEVICE",
    "dtype": "STICKER_MAKER_DTYPE",
    "offload": "STICKER_MAKER_OFFLOAD",
    "fuse_lora": "STICKER_MAKER_FUSE_LORA",
    "compile": "STICKER_MAKER_COMPILE",
    "preview_vae": "STICKER_MAKER_PREVIEW_VAE",
    "preview_every": "STICKER_MAKER_PREVIEW_EVERY",
}

DTYPES = ("auto", "float16", "fp16", "bfloat16", "bf16", "float32", "fp32")
OFFLOAD = ("none", "model", "sequential")
SWITCH = ("auto", "on", "off")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class EngineOptions:
    """Resolved engine options. Build with :meth:`from_env` (flags override the environment)."""

    device: str = "auto"
    dtype: str = "auto"
    offload: str = "none"
    fuse_lora: str = "auto"
    compile: bool = False
    #: the tiny autoencoder that decodes live previews ("" : none)
    preview_vae: str = ""
    #: a preview every this many steps (0: none)
    preview_every: int = 0

    @property
    def previews(self) -> bool:
        """Whether jobs get live previews (both settings given)."""
        return bool(self.preview_vae) and self.preview_every > 0

    def __post_init__(self) -> None:
        def bad(name: str, value: object, allowed: tuple[str, ...]) -> InvalidInput:
            return InvalidInput(
                f"{value!r} is not a valid {name} (flag --{name.replace('_', '-')} or "
                f"{ENV[name]}); allowed: {', '.join(allowed)}",
                name,
            )

        if self.dtype not in DTYPES:
            raise bad("dtype", self.dtype, DTYPES)
        if self.offload not in OFFLOAD:
            raise bad("offload", self.offload, OFFLOAD)
        if self.fuse_lora not in SWITCH:
            raise bad("fuse_lora", self.fuse_lora, SWITCH)
        if not isinstance(self.preview_every, int) or self.preview_every < 0:
            raise InvalidInput(
                f"{self.preview_every!r} is not a valid preview_every (flag --preview-every "
                "or STICKER_MAKER_PREVIEW_EVERY); use a whole number of steps, 0 for none",
                "preview_every",
            )
        name = self.device.split(":")[0]
        if name not in ("auto", "cuda", "cpu", "mps"):
            raise bad("device", self.device, ("auto", "cuda", "cuda:N", "cpu", "mps"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EngineOptions:
        """Options from ``STICKER_MAKER_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            raw = raw.strip().lower() if name not in ("device", "preview_vae") else raw.strip()
            if name == "compile":
                values[name] = _parse_bool(raw, var)
            elif name == "preview_every":
                values[name] = _parse_int(raw, var)
            elif name == "fuse_lora":
                values[name] = {"1": "on", "true": "on", "0": "off", "false": "off"}.get(raw, raw)
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (sent to the model process)."""
        return asdict(self)


def _parse_int(raw: str, var: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(
            f"{var}={raw!r} is not a whole number of steps; use e.g. 4 (0: no previews)", var
        ) from None


def _parse_bool(raw: str, var: str) -> bool:
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidInput(f"{var}={raw!r} is not a boolean; use 1 or 0", var)
