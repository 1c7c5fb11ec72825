"""A least-recently-used cache of loaded models, bounded per kind, that handles OOM.

Kinds are ``"base"`` (SDXL pipelines), ``"refiner"`` (SD 1.5 img2img) and
``"upscaler"`` (ESRGAN); each kind keeps at most ``size`` models, and on a GPU only as many
as leave room: before a model of a kind is loaded, cached ones of that kind go (least
recently used first) while the free memory is less than the largest of them plus a
quarter (the newcomer's weights and room to run). When loading a model
runs out of memory, every other cached model is dropped and the load is tried once more;
if it still does not fit, the :class:`~sticker_maker.engine.loading.DoesNotFit` error
(naming the model and the options that help) reaches the job.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from sticker_maker.engine.device import Placement, free_bytes, free_memory
from sticker_maker.engine.loading import DoesNotFit

T = TypeVar("T")


class ModelCache:
    def __init__(self, size: int, placement: Placement) -> None:
        self.size = max(1, size)
        self.placement = placement
        self._entries: OrderedDict[tuple[str, str], Any] = OrderedDict()
        #: loads per kind (tests and benchmarks count these)
        self.loads: dict[str, int] = {}
        #: seconds spent loading weights (kept out of a job's billed predict time)
        self.load_seconds = 0.0

    def get(self, kind: str, ref: str, load: Callable[[], T]) -> T:
        """The cached model, or ``load()`` it (evicting the least recently used first)."""
        key = (kind, ref)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        self._evict(kind, keep=self.size - 1)
        if self.placement.is_cuda:
            self._make_room(kind)
        started = time.perf_counter()
        try:
            try:
                value = load()
            except DoesNotFit:
                if not self._entries:
                    free_memory(self.placement)
                    raise
                self.clear()
                value = load()
        finally:
            self.load_seconds += time.perf_counter() - started
        self._entries[key] = value
        self.loads[kind] = self.loads.get(kind, 0) + 1
        return value

    def peek(self, kind: str, ref: str) -> Any:
        """The cached model or None, without loading or touching the LRU order."""
        return self._entries.get((kind, ref))

    def _make_room(self, kind: str) -> None:
        """Drop cached models of ``kind`` while the free memory would not hold one more."""
        same = [k for k in self._entries if k[0] == kind]
        while same:
            free = free_bytes(self.placement.device)
            largest = max(model_bytes(self._entries[k]) for k in same)
            if free is None or free >= 1.25 * largest:
                return
            del self._entries[same.pop(0)]
            free_memory(self.placement)

    def _evict(self, kind: str, keep: int) -> None:
        same = [k for k in self._entries if k[0] == kind]
        dropped = False
        while len(same) > keep:
            del self._entries[same.pop(0)]
            dropped = True
        if dropped:
            free_memory(self.placement)

    def droppable(self, keep: list[tuple[str, str]]) -> bool:
        """Whether any cached model is not in ``keep``."""
        return any(k not in keep for k in self._entries)

    def drop_all_but(self, keep: list[tuple[str, str]]) -> int:
        """Drop every cached model but those in ``keep`` ((kind, ref) pairs) and free the
        memory; returns how many were dropped (the engine makes room this way when a job
        runs out of memory)."""
        dropped = [k for k in self._entries if k not in keep]
        for key in dropped:
            del self._entries[key]
        free_memory(self.placement)
        return len(dropped)

    def clear(self) -> None:
        self._entries.clear()
        free_memory(self.placement)

    def keys(self, kind: str) -> list[str]:
        """Cached refs of one kind, least recently used first."""
        return [ref for k, ref in self._entries if k == kind]


def model_bytes(model: Any) -> int:
    """Bytes of a cached model's parameters and buffers (a pipeline's components, a
    spandrel descriptor's model, a module)."""
    import torch

    pipe = getattr(model, "pipe", model)
    components = getattr(pipe, "components", None)
    if isinstance(components, dict):
        modules = [m for m in components.values() if isinstance(m, torch.nn.Module)]
    else:
        inner = getattr(pipe, "model", pipe)
        modules = [inner] if isinstance(inner, torch.nn.Module) else []
    return sum(
        t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers())
    )
