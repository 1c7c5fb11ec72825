"""The sticker pipeline: SDXL + a sticker LoRA, through diffusers.

``Engine`` keeps base pipelines loaded between jobs (a small LRU), loads each
preset's LoRA once as a named adapter and switches adapters per job, so presets
that share a base never reload it. ``Engine.generate`` is one job, in numbered
steps.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from sticker_maker.engine import device as device_mod
from sticker_maker.engine.loading import LoraSource, load_lora, load_sdxl, lora_source
from sticker_maker.engine.schedulers import make_scheduler
from sticker_maker.errors import InvalidInput, JobCanceled
from sticker_maker.params import JobInput
from sticker_maker.presets import Preset, PresetRegistry
from sticker_maker.schedulers import SCHEDULER_NAMES

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int


@dataclass
class LoadedBase:
    """A base pipeline in memory and the LoRA adapters loaded into it."""

    pipe: Any
    scheduler_config: Any
    adapters: dict[str, str] = field(default_factory=dict)  # LoraSource.key → adapter name


class Engine:
    """Loads and runs SDXL sticker presets. One job at a time per instance."""

    def __init__(
        self,
        presets: PresetRegistry,
        *,
        cache_size: int = 2,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        self.presets = presets
        self.cache_size = max(1, cache_size)
        self.placement = device_mod.choose(device, dtype)
        self._bases: OrderedDict[str, LoadedBase] = OrderedDict()
        self._lock = threading.Lock()
        #: how many times a base pipeline was loaded from disk or Hub (tests count these)
        self.base_loads = 0
        #: seconds spent loading weights (kept out of a job's billed predict time)
        self.load_seconds = 0.0

    # -- model cache ------------------------------------------------------------

    def _base(self, preset: Preset) -> LoadedBase:
        loaded = self._bases.get(preset.base)
        if loaded is not None:
            self._bases.move_to_end(preset.base)
            return loaded
        while len(self._bases) >= self.cache_size:
            _, evicted = self._bases.popitem(last=False)
            del evicted
            if self.placement.device.type == "cuda":
                torch.cuda.empty_cache()
        started = time.perf_counter()
        pipe = load_sdxl(preset.base, preset.name, self.placement.dtype)
        pipe.to(self.placement.device)
        pipe.set_progress_bar_config(disable=True)
        self.base_loads += 1
        self.load_seconds += time.perf_counter() - started
        loaded = LoadedBase(pipe=pipe, scheduler_config=pipe.scheduler.config)
        self._bases[preset.base] = loaded
        return loaded

    def _activate_lora(self, loaded: LoadedBase, preset: Preset, scale: float) -> None:
        pipe = loaded.pipe
        if not preset.lora or scale == 0:
            if loaded.adapters:
                pipe.disable_lora()
            return
        source: LoraSource = lora_source(preset.lora, preset.lora_weight_name)
        adapter = loaded.adapters.get(source.key)
        if adapter is None:
            adapter = "lora_" + hashlib.sha1(source.key.encode()).hexdigest()[:12]
            started = time.perf_counter()
            load_lora(pipe, source, adapter, preset.name)
            self.load_seconds += time.perf_counter() - started
            loaded.adapters[source.key] = adapter
        pipe.enable_lora()
        pipe.set_adapters([adapter], adapter_weights=[scale])

    def warm(self, preset_name: str) -> None:
        """Load a preset's base and LoRA now (the worker's ``setup()``)."""
        preset = self.presets.get(preset_name)
        with self._lock:
            self._activate_lora(self._base(preset), preset, preset.lora_scale)

    # -- one job ----------------------------------------------------------------

    @staticmethod
    def check_inputs(job: JobInput) -> None:
        """Reject what the API should already have rejected, naming the field."""
        if job.width % 8 or job.height % 8:
            raise InvalidInput(f"{job.width}x{job.height} must be multiples of 8", "width")
        if job.scheduler not in SCHEDULER_NAMES:
            raise InvalidInput(
                f"unknown scheduler {job.scheduler!r}; allowed: {', '.join(SCHEDULER_NAMES)}",
                "scheduler",
            )
        if not 1 <= job.samples <= 4:
            raise InvalidInput(f"{job.samples} is out of range (1-4)", "samples")
        if job.steps < 1:
            raise InvalidInput(f"{job.steps} is out of range (≥ 1)", "steps")

    def generate(
        self,
        job: JobInput,
        *,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> list[GeneratedImage]:
        """Run one job. Raises :class:`JobCanceled` at the next step once cancelled."""
        # 1. Check inputs and find the preset.
        self.check_inputs(job)
        preset = self.presets.get(job.preset)

        with self._lock:
            # 2. Base pipeline (cached) and the preset's LoRA at the requested scale.
            loaded = self._base(preset)
            self._activate_lora(loaded, preset, job.lora_scale)
            pipe = loaded.pipe

            # 3. Sampler, built fresh from the base config.
            pipe.scheduler = make_scheduler(job.scheduler, loaded.scheduler_config, seed=job.seed)

            # 4. Prompts from the preset's templates.
            prompt = preset.render_prompt(job.prompt)
            negative = preset.render_negative(job.negative_prompt)

            # 5. One CPU generator per image (seed + i): same pixels on any device.
            seeds = job.seeds()
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]

            # 6. Denoise, reporting every step and stopping at the next one if cancelled.
            def on_step_end(p: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                if on_progress is not None:
                    on_progress(step + 1, p.num_timesteps)
                if should_cancel is not None and should_cancel():
                    raise JobCanceled("canceled by request")
                return kwargs

            with torch.inference_mode():
                result = pipe(
                    prompt=prompt,
                    negative_prompt=negative or None,
                    width=job.width,
                    height=job.height,
                    num_inference_steps=job.steps,
                    guidance_scale=job.guidance_scale,
                    num_images_per_prompt=job.samples,
                    generator=generators,
                    callback_on_step_end=on_step_end,
                    output_type="pil",
                )

        # 7. One image per seed.
        return [
            GeneratedImage(image=img, seed=s) for img, s in zip(result.images, seeds, strict=True)
        ]
