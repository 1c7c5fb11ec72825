"""The weights an :class:`~sticker_maker.engine.pipeline.Engine` keeps between jobs.

Base pipelines, refiners and upscalers live in a :class:`ModelCache` (least recently used
goes first); each base keeps its presets' LoRA adapters (loaded once, switched per job,
fused into the weights on a GPU) and replacement VAEs, so presets that share a base never
reload it. Every load is counted and timed: jobs are not billed for loading weights.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from sticker_maker.engine import device as device_mod
from sticker_maker.engine import reference as reference_mod
from sticker_maker.engine.cache import ModelCache
from sticker_maker.engine.loading import (
    does_not_fit,
    load_refiner,
    load_sdxl,
    load_upscaler,
    load_vae,
    lora_source,
    place,
)
from sticker_maker.engine.lora import LoraState
from sticker_maker.errors import ModelUnavailable
from sticker_maker.presets import Preset


@dataclass
class LoadedBase:
    """A base pipeline in memory, its LoRA adapters and any replacement VAEs."""

    pipe: Any
    scheduler_config: Any
    lora: LoraState
    original_vae: Any
    vaes: dict[str, Any] = field(default_factory=dict)
    #: the IP-Adapter files loaded into the UNet (None: none; kept once loaded)
    ip_adapter: reference_mod.AdapterSpec | None = None


@dataclass
class LoadedRefiner:
    pipe: Any
    scheduler_config: Any


class Models:
    """Loads, caches and prepares the models of presets on one placement."""

    def __init__(self, cache_size: int, placement: device_mod.Placement) -> None:
        self.placement = placement
        self.cache = ModelCache(cache_size, placement)
        #: compile the UNet's graphs when a base loads (see :func:`warm_up`); on a CPU
        #: compiling (inductor) takes minutes for nothing, so it stays lazy there
        self.warm_compile = placement.device.type != "cpu"
        #: LoRA/VAE loads and LoRA (un)fusing: weight work outside the model cache
        self._other_loads: dict[str, int] = {}
        self._other_load_seconds = 0.0

    @property
    def load_seconds(self) -> float:
        """Seconds spent loading (and fusing) weights, kept out of a job's billed time."""
        return self.cache.load_seconds + self._other_load_seconds

    @property
    def loads(self) -> dict[str, int]:
        """How many models of each kind were loaded so far (base, refiner, upscaler, ...)."""
        return {**self.cache.loads, **self._other_loads}

    def prepare(self, preset: Preset, lora_scale: float, reference: bool = False) -> LoadedBase:
        """The preset's base pipeline with its VAE and its LoRA at ``lora_scale`` (and
        its IP-Adapter when ``reference``: a job of it has a picture)."""
        loaded = self.base(preset)
        self._use_vae(loaded, preset)
        self._activate_lora(loaded, preset, lora_scale)
        if reference:
            self.ip_adapter(loaded, preset)
        return loaded

    def ip_adapter(self, loaded: LoadedBase, preset: Preset) -> tuple[str, ...]:
        """Load the preset's IP-Adapter files into its base (once; another preset's are
        replaced) and return their kinds in load order ("plus", "plus-face")."""
        spec = reference_mod.AdapterSpec.of(preset)
        if spec is None:
            raise ModelUnavailable(preset.reference_problem() or "no IP-Adapter")
        if loaded.ip_adapter != spec:
            loaded.ip_adapter = None  # another preset's files are unloaded first
            with self._weight_work("ip_adapter"):
                try:
                    reference_mod.load(loaded.pipe, spec, preset.name)
                except Exception as exc:
                    if device_mod.is_out_of_memory(exc):
                        raise does_not_fit("IP-Adapter", spec.source, self.placement) from exc
                    raise
                loaded.ip_adapter = spec
                if self.placement.offload != "none":
                    place(loaded.pipe, "base model", preset.base, self.placement)  # re-hook
        return spec.kinds

    @contextlib.contextmanager
    def _weight_work(self, kind: str | None = None) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._other_load_seconds += time.perf_counter() - started
        if kind is not None:
            self._other_loads[kind] = self._other_loads.get(kind, 0) + 1

    def _fuse(self) -> bool:
        # Fusing writes into the weights; with sequential offload they live on "meta".
        return self.placement.fuse_lora and self.placement.offload != "sequential"

    def _load_base(self, preset: Preset) -> LoadedBase:
        pipe = load_sdxl(preset.base, preset.name, self.placement)
        place(pipe, "base model", preset.base, self.placement)
        # Inference only: no weight needs a gradient. (Loading a LoRA freezes the base
        # weights anyway; freezing them now keeps a compiled UNet's guards unchanged.)
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.requires_grad_(False)
        if self.placement.compile:
            if self.placement.is_cuda:
                pipe.unet.to(memory_format=torch.channels_last)
            pipe.unet.compile()  # in place: pipe.unet stays a UNet2DConditionModel
        loaded = LoadedBase(
            pipe=pipe,
            scheduler_config=pipe.scheduler.config,
            lora=LoraState(pipe, fuse=self._fuse()),
            original_vae=pipe.vae,
        )
        if self.placement.compile and self.warm_compile:
            warm_up(loaded, preset)
        return loaded

    def base(self, preset: Preset) -> LoadedBase:
        return self.cache.get("base", preset.base, lambda: self._load_base(preset))

    def _use_vae(self, loaded: LoadedBase, preset: Preset) -> None:
        """The preset's replacement VAE (loaded once per base), else the base's own."""
        pipe = loaded.pipe
        wanted = loaded.original_vae
        if preset.vae:
            wanted = loaded.vaes.get(preset.vae)
            if wanted is None:
                with self._weight_work("vae"):
                    wanted = load_vae(preset.vae, preset.name, self.placement)
                    if self.placement.offload == "none":
                        try:
                            wanted.to(self.placement.device)
                        except Exception as exc:
                            if device_mod.is_out_of_memory(exc):
                                raise does_not_fit("VAE", preset.vae, self.placement) from exc
                            raise
                loaded.vaes[preset.vae] = wanted
        if pipe.vae is not wanted:
            pipe.vae = wanted
            if self.placement.offload != "none":
                place(pipe, "base model", preset.base, self.placement)  # re-hook offload

    def _activate_lora(self, loaded: LoadedBase, preset: Preset, scale: float) -> None:
        """The preset's LoRA stack at the job's ``lora_scale`` (each file loaded once)."""
        state = loaded.lora
        stack = []
        for ref in preset.lora_stack(scale):
            source = lora_source(ref.lora, ref.weight_name)
            if source.key not in state.adapters:
                with self._weight_work("lora"):
                    state.ensure_loaded(source, preset.name)
            stack.append((state.adapters[source.key], ref.scale))
        if state.fuse:
            with self._weight_work():  # fusing and unfusing are weight work too
                state.activate(stack)
        else:
            state.activate(stack)

    def refiner(self, preset: Preset) -> LoadedRefiner:
        ref = preset.refiner or ""

        def load() -> LoadedRefiner:
            pipe = load_refiner(ref, preset.name, self.placement)
            place(pipe, "refiner", ref, self.placement)
            return LoadedRefiner(pipe, pipe.scheduler.config)

        return self.cache.get("refiner", ref, load)

    def upscaler(self, preset: Preset) -> Any:
        ref = preset.upscaler or ""
        return self.cache.get(
            "upscaler", ref, lambda: load_upscaler(ref, preset.name, self.placement)
        )


def warm_up(loaded: LoadedBase, preset: Preset) -> None:
    """Compile the UNet's graphs now (at load, weight work) rather than in a user's job.

    Denoising compiles at most two graphs per size: batch 1 and any batch ≥ 2 (its batch
    dimension is marked dynamic, timesteps are always float32, LoRAs fused or not in the
    tree never change it: see :mod:`~sticker_maker.engine.denoise` and
    :mod:`~sticker_maker.engine.lora`). A lane of one image alone, then joined by a lane
    of two, takes both, at the preset's size (without guidance, so that one image is a
    batch of 1; with guidance every batch is ≥ 2 anyway).
    """
    from sticker_maker.engine.denoise import DenoiseLoop, Lane, LaneSettings

    settings = LaneSettings(
        preset.width,
        preset.height,
        2,
        0.0,
        preset.scheduler,
        preset.scheduler_options,
    )
    loaded.lora.activate(None)
    loop = DenoiseLoop(loaded.pipe, loaded.scheduler_config, settings)
    with torch.inference_mode():
        loop.add([Lane(prompts=["sticker"], negatives=[""], seeds=[0])])
        loop.step()
        loop.add([Lane(prompts=["sticker"] * 2, negatives=[""] * 2, seeds=[1, 2])])
        while loop.active:
            loop.step()
