"""Device, dtype and the speed/memory switches, resolved from :class:`EngineOptions`.

CUDA: float16 by default (bfloat16 on request), SDPA attention (diffusers' default with
torch 2), LoRA fused into the weights, TF32 matmuls for what still runs in float32.
CPU: float32, LoRA applied unfused unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sticker_maker.engine.options import EngineOptions

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
    #: "none", "model" or "sequential" CPU offload
    offload: str = "none"
    fuse_lora: bool = False
    compile: bool = False

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def choose(options: EngineOptions | None = None) -> Placement:
    """Turn options (``auto`` values included) into a concrete placement."""
    options = options or EngineOptions.from_env()
    name = options.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if options.dtype == "auto":
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    else:
        dtype = _DTYPES[options.dtype]
    fuse = dev.type == "cuda" if options.fuse_lora == "auto" else options.fuse_lora == "on"
    if dev.type == "cuda":
        # What still runs in float32 (VAE upcast, schedulers) may use TF32 tensor cores.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Placement(dev, dtype, offload=options.offload, fuse_lora=fuse, compile=options.compile)


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA/MPS out-of-memory error or a host ``MemoryError``."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc)
    return "out of memory" in text.lower() and isinstance(exc, RuntimeError)


def free_memory(placement: Placement) -> None:
    """Return cached allocator blocks to the device after models were dropped."""
    import gc

    gc.collect()
    if placement.is_cuda:
        torch.cuda.empty_cache()


def memory_note(placement: Placement) -> str:
    """``" (3.1 GiB free of 24.0 GiB on cuda:0)"`` on CUDA, else empty."""
    if not placement.is_cuda:
        return ""
    try:
        free, total = torch.cuda.mem_get_info(placement.device)
    except Exception:  # pragma: no cover - informational only
        return ""
    gib = 1024**3
    return f" ({free / gib:.1f} GiB free of {total / gib:.1f} GiB on {placement.device})"


def free_bytes(device: torch.device) -> int | None:
    """Memory a new allocation on ``device`` can use: on CUDA the driver's free memory
    plus what torch's allocator holds unused; on the CPU the kernel's MemAvailable (None
    where it cannot be read)."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
        except Exception:  # pragma: no cover - no driver
            return None
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
