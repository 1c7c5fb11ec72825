"""LoRA adapters on one loaded base: loaded once each, stacked and switched per job.

Every LoRA file is a named diffusers (peft) adapter; a job's stack of them is mixed with
``set_adapters(names, adapter_weights)``. Unfused, the adapters run beside each base
layer at every step (about 8-9 % per step on a GPU, 40 % on the tiny CPU model).

**Fused** (the GPU default), the stack's delta ``Σ B·A·scaling`` is computed per layer in
float32 and added into the base weight once (one rounding to the weight's dtype), and the
peft wrapper layers are then taken *out of the module tree*: the forward is the plain base
model again, so a fused LoRA costs nothing per step. (diffusers' ``fuse_lora`` leaves the
wrappers in place: every step still runs their Python, measured 16.0 against 11.4 ms a
step on the tiny CPU model.) With no LoRA in effect the wrappers are out of the tree too.

Switching goes back to the exact base weights without a snapshot of them: unfusing
subtracts the same float32 delta (recomputed from the adapter's factors) and rounds, which
gives back every base value except those where the rounding of the fuse lost a bit; those
values and where they go (indices, or a bitmask when many) are all that is kept, on the
CPU: always less than the base weights (at most 1/16 of them plus the values lost), and
a small fraction for a real LoRA, whose delta is small next to the weights. A switch of LoRA or of
``lora_scale`` is thus two small matmuls per layer, never a copy of the base weights (the
old CPU snapshot held up to 4.1 GiB per cached SDXL base, and alternating scales thrashed
it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from sticker_maker.engine.loading import LoraSource, load_lora

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")

#: (adapter name, weight) pairs in effect, in order
Stack = tuple[tuple[str, float], ...]


def adapter_name(source: LoraSource) -> str:
    return "lora_" + hashlib.sha1(source.key.encode()).hexdigest()[:12]


@dataclass
class _Wrapped:
    """A peft wrapper layer and where it sits in the module tree."""

    parent: torch.nn.Module
    attr: str
    layer: Any  # peft BaseTunerLayer

    @property
    def base(self) -> torch.nn.Module:
        return self.layer.get_base_layer()


@dataclass
class _Fix:
    """What unfusing one layer's weight needs besides the delta: the base values that
    ``(fused - delta)`` does not round back to, and where they go: flat int32 indices
    when few, else a bitmask (1 bit per weight), whichever is smaller."""

    where: torch.Tensor
    value: torch.Tensor
    bitmask: bool
    #: bytes of the base weight itself (what a snapshot of it would keep)
    weight_bytes: int

    @classmethod
    def of(cls, lost: torch.Tensor, weight: torch.Tensor) -> _Fix:
        flat = lost.flatten()
        index = flat.nonzero().flatten()
        value = weight.flatten()[index].to("cpu")
        size = weight.numel() * weight.element_size()
        if index.numel() * 4 <= (flat.numel() + 7) // 8:
            return cls(index.to("cpu", torch.int32), value, False, size)
        pad = torch.zeros((-flat.numel()) % 8, dtype=torch.bool, device=flat.device)
        bits = torch.cat([flat, pad]).view(-1, 8).to(torch.uint8)
        packed = (bits << torch.arange(8, dtype=torch.uint8, device=flat.device)).sum(
            1, dtype=torch.uint8
        )
        return cls(packed.to("cpu"), value, True, size)

    @property
    def nbytes(self) -> int:
        return (
            self.where.numel() * self.where.element_size()
            + self.value.numel() * self.value.element_size()
        )

    def apply(self, weight: torch.Tensor) -> None:
        if not self.value.numel():
            return
        flat = weight.view(-1)
        where = self.where.to(weight.device)
        if self.bitmask:
            shifts = torch.arange(8, dtype=torch.uint8, device=weight.device)
            mask = ((where[:, None] >> shifts) & 1).flatten()[: flat.numel()].bool()
            flat[mask] = self.value.to(weight.device)
        else:
            flat[where.long()] = self.value.to(weight.device)


class LoraState:
    """The adapters loaded into one pipeline and which stack is in effect (and how)."""

    def __init__(self, pipe: Any, *, fuse: bool) -> None:
        self.pipe = pipe
        self.fuse = fuse
        #: LoraSource.key → adapter name
        self.adapters: dict[str, str] = {}
        #: the stack currently in effect, or None for the plain base
        self.active: Stack | None = None
        self.fused = False
        self.loads = 0
        self.fuses = 0
        #: peft wrappers currently taken out of the module tree (forward = base layers)
        self._detached: list[_Wrapped] = []
        #: per fused layer (by wrapper id): the rounding fixes that restore it exactly
        self._fixes: dict[int, _Fix] = {}

    # -- public ---------------------------------------------------------------------

    def ensure_loaded(self, source: LoraSource, preset: str) -> str:
        """The adapter name for ``source``, loading it first if needed."""
        name = self.adapters.get(source.key)
        if name is None:
            self._plain()  # diffusers adds the new layers to the pristine, wrapped tree
            self.active = None
            name = adapter_name(source)
            load_lora(self.pipe, source, name, preset)
            self.adapters[source.key] = name
            self.loads += 1
        return name

    def activate(self, stack: Stack | list[tuple[str, float]] | None) -> None:
        """Make ``stack`` ((adapter, weight) pairs) the LoRAs in effect (None/empty: none)."""
        target: Stack | None = tuple((a, float(w)) for a, w in stack or () if w != 0) or None
        if target == self.active:
            return
        self._plain()
        self.active = None
        if target is None:
            self._detach()  # no LoRA: the plain base forward, no wrapper overhead
            return
        pipe = self.pipe
        pipe.enable_lora()
        pipe.set_adapters([a for a, _ in target], adapter_weights=[w for _, w in target])
        if self.fuse:
            self.fused = True
            try:
                self._fuse()
            except BaseException:  # out of memory halfway, say: undo the layers done
                self._unfuse()
                raise
            self._detach()
            self.fuses += 1
        self.active = target

    @property
    def restore_bytes(self) -> int:
        """Bytes kept to unfuse exactly (the rounding fixes); 0 when nothing is fused."""
        return sum(f.nbytes for f in self._fixes.values())

    @property
    def fused_weight_bytes(self) -> int:
        """Bytes of the base weights the fused stack changed (what a snapshot would keep)."""
        return sum(f.weight_bytes for f in self._fixes.values())

    def wrappers_in_forward(self) -> int:
        """How many peft wrapper layers the pipeline's models run now (tests, benches)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        return sum(
            isinstance(module, BaseTunerLayer)
            for component in self._components()
            for module in getattr(self.pipe, component).modules()
        )

    # -- the module tree ------------------------------------------------------------

    def _components(self) -> list[str]:
        return [c for c in COMPONENTS if getattr(self.pipe, c, None) is not None]

    def _wrapped(self) -> list[_Wrapped]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        found = []
        for component in self._components():
            model = getattr(self.pipe, component)
            for name, module in model.named_modules():
                if isinstance(module, BaseTunerLayer) and name:
                    parent_name, _, attr = name.rpartition(".")
                    parent = model.get_submodule(parent_name) if parent_name else model
                    found.append(_Wrapped(parent, attr, module))
        return found

    def _detach(self) -> None:
        """Put each wrapper's base layer in its place (the wrappers are kept aside)."""
        if self._detached:
            return
        self._detached = self._wrapped()
        for w in self._detached:
            w.parent._modules[w.attr] = w.base

    def _attach(self) -> None:
        for w in self._detached:
            w.parent._modules[w.attr] = w.layer
        self._detached = []

    def _plain(self) -> None:
        """Back to the exact base weights with the wrappers in the tree."""
        if self.fused:
            self._unfuse()
        self._attach()

    # -- fusing ---------------------------------------------------------------------

    @staticmethod
    def _delta(layer: Any) -> torch.Tensor | None:
        """``Σ B·A·scaling`` of the layer's active adapters, in float32 (None if none)."""
        total = None
        for name in layer.active_adapters:
            if name not in layer.lora_A:
                continue
            if layer.use_dora.get(name, False):
                raise NotImplementedError("DoRA adapters are not fused")
            a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
            if a.dim() == 2:
                delta = b.float() @ a.float()
                if getattr(layer, "fan_in_fan_out", False):
                    delta = delta.T
            else:  # convolutions: peft's own product, then float32
                delta = layer.get_delta_weight(name).float() / layer.scaling[name]
            delta = delta * layer.scaling[name]
            total = delta if total is None else total + delta
        return total

    def _fuse(self) -> None:
        """Add each wrapped layer's delta into its base weight, keeping the fixes."""
        with torch.no_grad():
            for w in self._wrapped():
                delta = self._delta(w.layer)
                if delta is None:
                    continue
                weight = w.base.weight
                fused = (weight.float() + delta.view_as(weight)).to(weight.dtype)
                back = (fused.float() - delta.view_as(weight)).to(weight.dtype)
                lost = (back != weight) | (back.isnan() != weight.isnan())
                fix = _Fix.of(lost, weight)
                weight.copy_(fused)
                self._fixes[id(w.layer)] = fix  # recorded once the weight holds the delta

    def _unfuse(self) -> None:
        """Subtract the deltas again and put back the values the rounding lost."""
        with torch.no_grad():
            for w in self._detached or self._wrapped():
                fix = self._fixes.pop(id(w.layer), None)
                if fix is None:
                    continue
                delta = self._delta(w.layer)
                assert delta is not None  # the same adapters are still active
                weight = w.base.weight
                weight.copy_((weight.float() - delta.view_as(weight)).to(weight.dtype))
                fix.apply(weight)
        self._fixes.clear()
        self.fused = False
