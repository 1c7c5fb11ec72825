"""The sticker pipeline: SDXL + a sticker LoRA through diffusers, then optional upscale.

``Engine`` keeps models loaded between jobs (:class:`ModelCache`, least recently used
goes first), loads each preset's LoRA once as a named adapter and switches adapters per
job (fused into the weights on GPU), so presets that share a base never reload it.
``Engine.generate`` is one job, in numbered steps. Denoising works on a
:class:`DenoiseBatch`, a list of images that share every pipeline-wide setting, so
several jobs with the same :func:`batch_key` can later be denoised in one call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from sticker_maker.engine import device as device_mod
from sticker_maker.engine import upscale as upscale_mod
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
from sticker_maker.engine.options import EngineOptions
from sticker_maker.engine.schedulers import make_scheduler
from sticker_maker.errors import InvalidInput, JobCanceled, ModelUnavailable
from sticker_maker.params import JobInput, batch_key
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
    """A base pipeline in memory, its LoRA adapters and any replacement VAEs."""

    pipe: Any
    scheduler_config: Any
    lora: LoraState
    original_vae: Any
    vaes: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedRefiner:
    pipe: Any
    scheduler_config: Any


@dataclass(frozen=True)
class DenoiseItem:
    prompt: str
    negative: str
    seed: int


@dataclass(frozen=True)
class DenoiseBatch:
    """Images denoised together: one prompt and seed each, everything else shared."""

    preset: Preset
    width: int
    height: int
    steps: int
    guidance_scale: float
    scheduler: str
    lora_scale: float
    items: tuple[DenoiseItem, ...]

    @classmethod
    def for_job(cls, job: JobInput, preset: Preset) -> DenoiseBatch:
        """Image i of the job uses ``seed + i``."""
        prompt = preset.render_prompt(job.prompt)
        negative = preset.render_negative(job.negative_prompt)
        return cls(
            preset=preset,
            width=job.width,
            height=job.height,
            steps=job.steps,
            guidance_scale=job.guidance_scale,
            scheduler=job.scheduler,
            lora_scale=job.lora_scale,
            items=tuple(DenoiseItem(prompt, negative, s) for s in job.seeds()),
        )

    @classmethod
    def for_jobs(cls, jobs: list[JobInput], preset: Preset) -> DenoiseBatch:
        """The images of several jobs with one :func:`batch_key`, job after job."""
        parts = [cls.for_job(job, preset) for job in jobs]
        return dataclasses.replace(parts[0], items=tuple(i for p in parts for i in p.items))


@dataclass
class JobResult:
    """One job's part of :meth:`Engine.generate_many`.

    ``images`` or ``error`` (:class:`JobCanceled` for a job cancelled during the call).
    ``seconds``: the model time that gave this job its images (the shared call, then its
    own upscale); ``share``: its part of that (the call split by image count, plus its
    own upscale), what it is billed. Weight loading is in neither.
    """

    images: list[GeneratedImage] = field(default_factory=list)
    error: Exception | None = None
    seconds: float = 0.0
    share: float = 0.0


class _Progress:
    """One step counter over the phases of a job (denoise, then refine)."""

    def __init__(self, report: ProgressFn | None, totals: dict[str, int]) -> None:
        self.report = report
        self.totals = dict(totals)
        self.done = 0

    def set_total(self, phase: str, total: int) -> None:
        self.totals[phase] = total

    def step(self) -> None:
        self.done += 1
        if self.report is not None:
            total = sum(self.totals.values())
            self.report(min(self.done, total), total)


class Engine:
    """Loads and runs sticker presets. One job at a time per instance."""

    def __init__(
        self,
        presets: PresetRegistry,
        *,
        cache_size: int = 2,
        options: EngineOptions | None = None,
    ) -> None:
        self.presets = presets
        self.options = options or EngineOptions.from_env()
        self.placement = device_mod.choose(self.options)
        self.cache = ModelCache(cache_size, self.placement)
        self._lock = threading.Lock()
        #: LoRA/VAE loads and LoRA (un)fusing: weight work outside the model cache
        self._other_loads: dict[str, int] = {}
        self._other_load_seconds = 0.0

    @property
    def cache_size(self) -> int:
        return self.cache.size

    @property
    def base_loads(self) -> int:
        """How many times a base pipeline was loaded from disk or Hub (tests count these)."""
        return self.cache.loads.get("base", 0)

    @property
    def load_seconds(self) -> float:
        """Seconds spent loading (and fusing) weights, kept out of a job's billed time."""
        return self.cache.load_seconds + self._other_load_seconds

    @property
    def loads(self) -> dict[str, int]:
        """How many models of each kind were loaded so far (base, refiner, upscaler, ...)."""
        return {**self.cache.loads, **self._other_loads}

    @contextlib.contextmanager
    def _weight_work(self, kind: str | None = None) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._other_load_seconds += time.perf_counter() - started
        if kind is not None:
            self._other_loads[kind] = self._other_loads.get(kind, 0) + 1

    # -- models -----------------------------------------------------------------

    def _fuse(self) -> bool:
        # Fusing writes into the weights; with sequential offload they live on "meta".
        return self.placement.fuse_lora and self.placement.offload != "sequential"

    def _load_base(self, preset: Preset) -> LoadedBase:
        pipe = load_sdxl(preset.base, preset.name, self.placement)
        place(pipe, "base model", preset.base, self.placement)
        if self.placement.compile:
            if self.placement.is_cuda:
                pipe.unet.to(memory_format=torch.channels_last)
            pipe.unet.compile()  # in place: pipe.unet stays a UNet2DConditionModel
        return LoadedBase(
            pipe=pipe,
            scheduler_config=pipe.scheduler.config,
            lora=LoraState(pipe, fuse=self._fuse()),
            original_vae=pipe.vae,
        )

    def _base(self, preset: Preset) -> LoadedBase:
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
        state = loaded.lora
        adapter = None
        if preset.lora and scale != 0:
            source = lora_source(preset.lora, preset.lora_weight_name)
            if source.key not in state.adapters:
                with self._weight_work("lora"):
                    state.ensure_loaded(source, preset.name)
            adapter = state.adapters[source.key]
        if state.fuse:
            with self._weight_work():  # fusing and unfusing are weight work too
                state.activate(adapter, scale)
        else:
            state.activate(adapter, scale)

    def _refiner(self, preset: Preset) -> LoadedRefiner:
        ref = preset.refiner or ""

        def load() -> LoadedRefiner:
            pipe = load_refiner(ref, preset.name, self.placement)
            place(pipe, "refiner", ref, self.placement)
            return LoadedRefiner(pipe, pipe.scheduler.config)

        return self.cache.get("refiner", ref, load)

    def _upscaler(self, preset: Preset) -> Any:
        ref = preset.upscaler or ""
        return self.cache.get(
            "upscaler", ref, lambda: load_upscaler(ref, preset.name, self.placement)
        )

    def warm(self, preset_name: str) -> None:
        """Load a preset's base and LoRA now (the worker's ``setup()``)."""
        preset = self.presets.get(preset_name)
        with self._lock:
            loaded = self._base(preset)
            self._use_vae(loaded, preset)
            self._activate_lora(loaded, preset, preset.lora_scale)

    # -- one job ----------------------------------------------------------------

    def check_inputs(self, job: JobInput) -> None:
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
        if job.upscale and (problem := self.presets.get(job.preset).upscale_problem()):
            raise InvalidInput(problem, "upscale")

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
        batch = DenoiseBatch.for_job(job, preset)

        # 2. Plan the step count of every phase, so progress covers the whole job.
        plan = None
        totals = {"denoise": job.steps}
        if job.upscale:
            plan = upscale_mod.refine_plan(
                job.width * 2,
                job.height * 2,
                job.upscale_steps,
                preset.upscale_denoise,
                preset.upscale_tile,
                preset.upscale_padding,
            )
            totals["refine"] = plan.total_steps * job.samples
        progress = _Progress(on_progress, totals)

        with self._lock, _explain_out_of_memory(job, self.placement):
            # 3. Denoise all images of the batch in one pipeline call.
            images = self._denoise(batch, progress, should_cancel)
            # 4. Upscale: ESRGAN to 2x, then the tiled img2img refine, image by image.
            if plan is not None:
                images = [
                    self._upscale(preset, image, item.seed, job, plan, progress, should_cancel)
                    for image, item in zip(images, batch.items, strict=True)
                ]
        return [
            GeneratedImage(image=image, seed=item.seed)
            for image, item in zip(images, batch.items, strict=True)
        ]

    def generate_many(
        self,
        jobs: list[JobInput],
        *,
        on_progress: list[ProgressFn | None] | None = None,
        should_cancel: list[CancelFn | None] | None = None,
    ) -> list[JobResult]:
        """Run several jobs, denoising those with equal :func:`batch_key` in one call.

        Every job keeps its own seeds (the same pixels as alone, to float rounding), its
        own progress and its own cancel: a cancelled job is dropped from the results
        (``JobCanceled``) while the call goes on for the others; the call stops only once
        all of its jobs are cancelled. An error in a shared call is every one's error.
        """
        progress_fns = on_progress or [None] * len(jobs)
        cancel_fns = should_cancel or [None] * len(jobs)
        results = [JobResult() for _ in jobs]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for n, job in enumerate(jobs):
            try:
                self.check_inputs(job)
                preset = self.presets.get(job.preset)
            except Exception as exc:
                results[n].error = exc
                continue
            # A call has a negative prompt for all of its images or for none (see batch_key).
            rendered = bool(preset.render_negative(job.negative_prompt))
            groups.setdefault((batch_key(job), rendered), []).append(n)
        with self._lock:
            for members in groups.values():
                self._run_group(
                    [jobs[n] for n in members],
                    [results[n] for n in members],
                    [progress_fns[n] for n in members],
                    [cancel_fns[n] for n in members],
                )
        return results

    def _run_group(
        self,
        jobs: list[JobInput],
        results: list[JobResult],
        progress_fns: list[ProgressFn | None],
        cancel_fns: list[CancelFn | None],
    ) -> None:
        first = jobs[0]
        preset = self.presets.get(first.preset)
        batch = DenoiseBatch.for_jobs(jobs, preset)
        plans = [self._refine_plan(job, preset) for job in jobs]
        progresses = [
            _Progress(fn, self._totals(job, plan))
            for fn, job, plan in zip(progress_fns, jobs, plans, strict=True)
        ]
        canceled = [False] * len(jobs)

        def all_canceled() -> bool:
            for n, fn in enumerate(cancel_fns):
                if not canceled[n] and fn is not None and fn():
                    canceled[n] = True
            return all(canceled)

        loading = self.load_seconds
        started = time.perf_counter()
        try:
            with _explain_out_of_memory(first, self.placement, len(batch.items)):
                images = self._denoise(batch, progresses, all_canceled)
        except Exception as exc:
            for result in results:
                result.error = exc
            return
        call = max(0.0, time.perf_counter() - started - (self.load_seconds - loading))
        all_canceled()
        total_images = len(batch.items)
        at = 0
        for n, (job, result) in enumerate(zip(jobs, results, strict=True)):
            mine = list(
                zip(images[at : at + job.samples], batch.items[at : at + job.samples], strict=True)
            )
            at += job.samples
            result.seconds = call
            result.share = call * job.samples / total_images
            if canceled[n]:
                result.error = JobCanceled("canceled by request")
                continue
            try:
                if plans[n] is not None:
                    loading, started = self.load_seconds, time.perf_counter()
                    with _explain_out_of_memory(job, self.placement):
                        mine = [
                            (
                                self._upscale(
                                    preset,
                                    image,
                                    item.seed,
                                    job,
                                    plans[n],
                                    progresses[n],
                                    cancel_fns[n],
                                ),
                                item,
                            )
                            for image, item in mine
                        ]
                    own = time.perf_counter() - started - (self.load_seconds - loading)
                    result.seconds += own
                    result.share += own
                result.images = [GeneratedImage(image=im, seed=item.seed) for im, item in mine]
            except Exception as exc:
                result.error = exc

    @staticmethod
    def _refine_plan(job: JobInput, preset: Preset) -> upscale_mod.RefinePlan | None:
        if not job.upscale:
            return None
        return upscale_mod.refine_plan(
            job.width * 2,
            job.height * 2,
            job.upscale_steps,
            preset.upscale_denoise,
            preset.upscale_tile,
            preset.upscale_padding,
        )

    @staticmethod
    def _totals(job: JobInput, plan: upscale_mod.RefinePlan | None) -> dict[str, int]:
        totals = {"denoise": job.steps}
        if plan is not None:
            totals["refine"] = plan.total_steps * job.samples
        return totals

    def _denoise(
        self,
        batch: DenoiseBatch,
        progress: _Progress | list[_Progress],
        should_cancel: CancelFn | None,
    ) -> list[Image.Image]:
        """Denoise and decode ``batch`` in one pipeline call; each step advances ``progress``
        (every job's, for a batch of jobs); ``should_cancel()`` True stops the call."""
        progresses = progress if isinstance(progress, list) else [progress]
        preset = batch.preset
        # Base pipeline (cached), VAE, and the preset's LoRA at the requested scale.
        loaded = self._base(preset)
        self._use_vae(loaded, preset)
        self._activate_lora(loaded, preset, batch.lora_scale)
        pipe = loaded.pipe

        # Sampler, built fresh from the base config; one CPU generator per image (same
        # pixels on any device; the SDE sampler gets the seeds for its Brownian tree).
        seeds = [item.seed for item in batch.items]
        pipe.scheduler = make_scheduler(batch.scheduler, loaded.scheduler_config, seeds=seeds)
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        negatives = [item.negative for item in batch.items]

        def on_step_end(p: Any, _step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            for each in progresses:
                each.set_total("denoise", p.num_timesteps)
                each.step()
            if should_cancel is not None and should_cancel():
                raise JobCanceled("canceled by request")
            return kwargs

        with torch.inference_mode():
            result = pipe(
                prompt=[item.prompt for item in batch.items],
                negative_prompt=None if not any(negatives) else negatives,
                width=batch.width,
                height=batch.height,
                num_inference_steps=batch.steps,
                guidance_scale=batch.guidance_scale,
                generator=generators,
                callback_on_step_end=on_step_end,
                output_type="np",
            )
        return [self._to_image(array, preset) for array in result.images]

    def _to_image(self, array: np.ndarray, preset: Preset) -> Image.Image:
        if not np.isfinite(array).all():
            raise ModelUnavailable(
                f"preset {preset.name!r} produced NaN pixels in {self.placement.dtype} (a "
                'black image). Set vae = "madebyollin/sdxl-vae-fp16-fix" for the preset, or '
                "run in bfloat16 (STICKER_MAKER_DTYPE=bfloat16) or float32."
            )
        return Image.fromarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))

    def _upscale(
        self,
        preset: Preset,
        image: Image.Image,
        seed: int,
        job: JobInput,
        plan: upscale_mod.RefinePlan,
        progress: _Progress,
        should_cancel: CancelFn | None,
    ) -> Image.Image:
        doubled = upscale_mod.esrgan_2x(
            self._upscaler(preset),
            image,
            tile=preset.upscale_tile,
            padding=preset.upscale_padding,
            should_cancel=should_cancel,
        )
        refiner = self._refiner(preset)
        return upscale_mod.refine(
            refiner.pipe,
            refiner.scheduler_config,
            doubled,
            seed=seed,
            plan=plan,
            padding=preset.upscale_padding,
            denoise=preset.upscale_denoise,
            on_step=progress.step,
            should_cancel=should_cancel,
        )


@contextlib.contextmanager
def _explain_out_of_memory(
    job: JobInput, placement: device_mod.Placement, images: int | None = None
) -> Iterator[None]:
    """Turn an out-of-memory error while generating into an actionable message."""
    try:
        yield
    except Exception as exc:
        if not device_mod.is_out_of_memory(exc):
            raise
        device_mod.free_memory(placement)
        size = f"{job.width}x{job.height}" + (" upscaled 2x" if job.upscale else "")
        raise ModelUnavailable(
            f"out of memory while generating {images or job.samples} image(s) at {size}"
            f"{device_mod.memory_note(placement)}. Ask for fewer samples or a smaller size, "
            "or free memory: serve --offload model (STICKER_MAKER_OFFLOAD=model) or "
            "--pipeline-cache 1"
            + (" or a smaller --max-batch." if images and images > job.samples else ".")
        ) from exc
