"""Device and dtype: CUDA fp16 when a GPU is present, CPU fp32 otherwise.

Override with ``STICKER_MAKER_DEVICE`` (``cuda``, ``cuda:1``, ``cpu``, ``mps``) and
``STICKER_MAKER_DTYPE`` (``float16``, ``bfloat16``, ``float32``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype


def choose(device: str | None = None, dtype: str | None = None) -> Placement:
    name = device or os.environ.get("STICKER_MAKER_DEVICE")
    if not name:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    dtype_name = dtype or os.environ.get("STICKER_MAKER_DTYPE")
    if dtype_name:
        if dtype_name not in _DTYPES:
            raise ValueError(
                f"STICKER_MAKER_DTYPE={dtype_name!r} is unknown; allowed: {', '.join(_DTYPES)}"
            )
        torch_dtype = _DTYPES[dtype_name]
    else:
        torch_dtype = torch.float16 if dev.type == "cuda" else torch.float32
    return Placement(dev, torch_dtype)
