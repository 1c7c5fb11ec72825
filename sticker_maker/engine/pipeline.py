"""The sticker pipeline: SDXL + a sticker LoRA through diffusers, then optional upscale.

``Engine`` keeps models loaded between jobs (:mod:`~sticker_maker.engine.models`:
cached bases, LoRA adapters switched per job, VAEs, refiners and upscalers).
``Engine.run`` takes jobs and runs those with one :func:`batch_key` as lanes of a
:class:`~sticker_maker.engine.denoise.DenoiseLoop` (one UNet call per step for all of
them; jobs join and leave between steps), in numbered steps; ``generate`` is one job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from sticker_maker.engine import device as device_mod
from sticker_maker.engine import reference as reference_mod
from sticker_maker.engine import upscale as upscale_mod
from sticker_maker.engine.cache import ModelCache
from sticker_maker.engine.denoise import DenoiseLoop, Lane, LaneSettings
from sticker_maker.engine.memory import explain_out_of_memory as _explain_out_of_memory
from sticker_maker.engine.memory import retry_out_of_memory
from sticker_maker.engine.models import Models
from sticker_maker.engine.options import EngineOptions
from sticker_maker.engine.preview import PreviewDecoder
from sticker_maker.engine.requests import (
    CancelFn,
    GeneratedImage,
    JobResult,
    MoreFn,
    ProgressFn,
    Request,
    _Progress,
)
from sticker_maker.errors import InvalidInput, JobCanceled, ModelUnavailable
from sticker_maker.params import JobInput, batch_key
from sticker_maker.presets import Preset, PresetRegistry
from sticker_maker.schedulers import SCHEDULER_NAMES

__all__ = ["MAX_PACK", "Engine", "GeneratedImage", "JobResult", "MoreFn", "Request"]

#: the most stickers the engine takes in one pack job (a Telegram set: 120; the API sets
#: the limit users get, WhatsApp packs hold 3-30); a big pack runs in UNet slices
MAX_PACK = 120


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
        self.models = Models(cache_size, self.placement)
        #: cached models dropped to make room after an out-of-memory error
        self.evicted_for_memory = 0
        self._previews: PreviewDecoder | None = None
        self._lock = threading.Lock()
        #: the most samples per UNet call, per (base, width, height): None (all of a step's
        #: samples in one call) until a call ran out of memory; then the halved bound the
        #: loop settled on is kept for the next loops (a big pack runs in slices)
        self.unet_samples: dict[tuple[str, int, int], int] = {}

    @property
    def cache(self) -> ModelCache:
        return self.models.cache

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
        return self.models.load_seconds

    @property
    def loads(self) -> dict[str, int]:
        """How many models of each kind were loaded so far (base, refiner, upscaler, ...)."""
        return self.models.loads

    def warm(self, preset_name: str) -> None:
        """Load a preset's base and LoRA now (the worker's ``setup()``)."""
        preset = self.presets.get(preset_name)
        with self._lock:
            self.models.prepare(preset, preset.lora_scale)

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
        if job.expressions:
            if not 1 <= len(job.expressions) <= MAX_PACK or job.samples != len(job.expressions):
                raise InvalidInput(
                    f"a pack holds 1-{MAX_PACK} stickers, one per expression "
                    f"(got {len(job.expressions)} expressions, samples {job.samples})",
                    "expressions",
                )
        elif not 1 <= job.samples <= 4:
            raise InvalidInput(f"{job.samples} is out of range (1-4)", "samples")
        if job.steps < 1:
            raise InvalidInput(f"{job.steps} is out of range (≥ 1)", "steps")
        if job.upscale and (problem := self.presets.get(job.preset).upscale_problem()):
            raise InvalidInput(problem, "upscale")
        if job.reference and (problem := self.presets.get(job.preset).reference_problem()):
            raise InvalidInput(problem, "image")

    def generate(
        self,
        job: JobInput,
        *,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        picture: bytes | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> list[GeneratedImage]:
        """Run one job (``picture``: its reference picture's bytes, if it has one).
        Raises :class:`JobCanceled` at the next step once cancelled."""
        results = [JobResult()]
        request = Request(
            job,
            lambda r: results.__setitem__(0, r),
            on_progress,
            should_cancel,
            picture=picture,
            on_log=on_log,
        )
        self.run([request])
        if results[0].error is not None:
            raise results[0].error
        return results[0].images

    def generate_many(
        self,
        jobs: list[JobInput],
        *,
        on_progress: list[ProgressFn | None] | None = None,
        should_cancel: list[CancelFn | None] | None = None,
    ) -> list[JobResult]:
        """Run several jobs (see :meth:`run`) and return their results in order."""
        results = [JobResult() for _ in jobs]
        progress_fns = on_progress or [None] * len(jobs)
        cancel_fns = should_cancel or [None] * len(jobs)
        self.run(
            [
                Request(job, lambda r, n=n: results.__setitem__(n, r), progress, cancel)
                for n, (job, progress, cancel) in enumerate(
                    zip(jobs, progress_fns, cancel_fns, strict=True)
                )
            ]
        )
        return results

    def run(self, requests: list[Request], more: MoreFn | None = None) -> None:
        """Run generation jobs; those with one :func:`batch_key` denoise together.

        Each job is a lane of a :class:`DenoiseLoop`: its own seeds (the same pixels as
        alone, to float rounding), progress and cancel; a cancelled job leaves at the
        next step while the others go on, and a finished one is decoded and handed to
        its ``on_done`` at once. ``more()``, asked between steps, gives jobs that arrived
        meanwhile: those with the running batch key join the loop (continuous batching),
        others wait for it to end. Every request's ``on_done`` is called exactly once.
        """
        waiting = list(requests)
        with self._lock:
            while waiting:
                head = waiting.pop(0)
                try:
                    key = self._key(head.job)
                except Exception as exc:
                    head.on_done(JobResult(error=exc))
                    continue
                group = [head] + [r for r in waiting if self._key_or_none(r.job) == key]
                waiting = [r for r in waiting if r not in group]
                self._stream(key, group, waiting, more)

    def _key(self, job: JobInput) -> tuple[Any, ...]:
        self.check_inputs(job)
        preset = self.presets.get(job.preset)
        # A negative prompt the preset adds counts as one (see batch_key).
        return (batch_key(job), bool(preset.render_negative(job.negative_prompt)))

    def _key_or_none(self, job: JobInput) -> tuple[Any, ...] | None:
        try:
            return self._key(job)
        except Exception:
            return None

    def _stream(
        self,
        key: tuple[Any, ...],
        group: list[Request],
        waiting: list[Request],
        more: MoreFn | None,
    ) -> None:
        """Denoise ``group`` and whatever joins it, until no lane is left."""
        started, loading = time.perf_counter(), self.load_seconds
        # 1. The preset's base pipeline (cached), its VAE and LoRA at the asked scale.
        first = group[0].job
        preset = self.presets.get(first.preset)
        try:
            with _explain_out_of_memory(first, self.placement, preset=preset):
                # (a job's IP-Adapter loads with its lane: a failed load fails that job only)
                loaded = self.models.prepare(preset, first.lora_scale)
        except Exception as exc:
            for request in group:
                request.on_done(JobResult(error=exc))
            return
        settings = LaneSettings(
            first.width,
            first.height,
            first.steps,
            first.guidance_scale,
            first.scheduler,
            preset.scheduler_options,
        )
        bound = (preset.base, first.width, first.height)
        loop = DenoiseLoop(
            loaded.pipe,
            loaded.scheduler_config,
            settings,
            self._preview_decoder(group),
            max_samples=self.unet_samples.get(bound),
            make_room=lambda: self._make_room(preset),
        )
        # Upscaling jobs refine one by one after denoising: a joiner would wait for that.
        joinable = more is not None and not first.upscale
        with torch.inference_mode():
            # 2. The group's jobs become lanes: prompts (one encoder call), sampler, noise.
            # Their time counts from the start (the set-up above was theirs, weight
            # loading aside).
            setup = time.perf_counter() - started - (self.load_seconds - loading)
            self._join(loop, group, preset, started, loading, setup)
            while loop.active:
                # 3. One step of every lane, in one UNet call.
                images = sum(lane.size for lane in loop.active)
                try:
                    with _explain_out_of_memory(first, self.placement, images, preset):
                        finished, cancelled = self._retry(loop.step, preset)
                    if loop.max_samples is not None:
                        self.unet_samples[bound] = loop.max_samples
                except Exception as exc:  # a shared call failed: every lane in it fails
                    for lane in list(loop.active):
                        loop.drop(lane)
                        lane.tag.done(self, JobResult(error=exc, share=lane.billed))
                    break
                # 4. Lanes that left: cancelled ones, then finished ones (decoded in one
                # call, then upscaled one by one if they ask).
                for lane in cancelled:
                    lane.tag.done(
                        self, JobResult(error=JobCanceled("canceled by request"), share=lane.billed)
                    )
                self._finish(loop, finished, preset)
                # 5. Jobs that arrived meanwhile join at this step boundary, unless a job
                # of another batch key waits (then this loop drains and that one goes next).
                joiners = []
                for request in more() if joinable and more is not None else []:
                    if not waiting and self._key_or_none(request.job) == key:
                        joiners.append(request)
                    else:
                        waiting.append(request)
                self._join(loop, joiners, preset, time.perf_counter(), self.load_seconds)

    def _preview_decoder(self, group: list[Request]) -> PreviewDecoder | None:
        """The tiny autoencoder for live previews, loaded on first use and kept (None
        when the operator set none, or no job of the loop's first group wants them)."""
        if not self.options.previews or not any(r.on_preview for r in group):
            return None
        if self._previews is None:
            self._previews = PreviewDecoder.load(
                self.options.preview_vae,
                self.options.preview_every,
                self.placement.device,
                self.placement.dtype,
            )
        return self._previews

    def _join(
        self,
        loop: DenoiseLoop,
        requests: list[Request],
        preset: Preset,
        started: float,
        loading: float,
        setup: float = 0.0,
    ) -> None:
        """Add jobs to the loop as lanes (``setup``: seconds of shared work to bill them)."""
        lanes = []
        for request in requests:
            job = request.job
            began, loading_before = time.perf_counter(), self.load_seconds
            try:
                reference = self._reference(loop, request, preset)
            except Exception as exc:
                request.on_done(JobResult(error=exc))
                continue
            own = time.perf_counter() - began - (self.load_seconds - loading_before)
            plan = self._refine_plan(job, preset)
            progress = _Progress(request.on_progress, self._totals(job, plan))
            seeds = job.seeds()
            lanes.append(
                Lane(
                    prompts=[preset.render_prompt(p) for p in job.prompts()],
                    negatives=[preset.render_negative(job.negative_prompt)] * len(seeds),
                    seeds=seeds,
                    on_step=progress.denoised,
                    should_cancel=request.should_cancel,
                    on_preview=request.on_preview,
                    tag=_InFlight(request, progress, plan, started, loading),
                    reference=reference,
                    billed=own,
                )
            )
        if not lanes:
            return
        images = sum(lane.size for lane in lanes)
        for lane in lanes:
            lane.billed += setup * lane.size / images
        try:
            with _explain_out_of_memory(requests[0].job, self.placement, images, preset):
                self._retry(lambda: loop.add(lanes), preset)
        except Exception as exc:
            for lane in lanes:
                lane.tag.done(self, JobResult(error=exc, share=lane.billed))

    def _reference(
        self, loop: DenoiseLoop, request: Request, preset: Preset
    ) -> reference_mod.LaneReference | None:
        """A job's reference picture, ready for its lane: the preset's IP-Adapter loaded
        into the loop's base (if a joiner is the first to need it), the face found and
        cropped (or the whole picture: the job's logs say which), the embeddings."""
        ref = request.job.reference
        if ref is None:
            return None
        if request.picture is None:
            raise InvalidInput("the reference picture was not given to the engine", "image")
        picture = reference_mod.open_picture(request.picture)
        kinds = self.models.ip_adapter(self.models.base(preset), preset)
        job = request.job
        return reference_mod.prepare(
            loop.pipe,
            kinds,
            picture,
            weight=ref.ip_adapter_weight,
            noise=ref.ip_adapter_noise,
            seed=job.seed,
            strength=ref.strength,
            size=(job.width, job.height),
            log=request.on_log or (lambda _line: None),
        )

    def _finish(self, loop: DenoiseLoop, lanes: list[Lane], preset: Preset) -> None:
        """Decode finished lanes (one VAE call); upscale and refine if their jobs ask."""
        if not lanes:
            return
        try:
            with _explain_out_of_memory(lanes[0].tag.request.job, self.placement, preset=preset):
                decoded = self._retry(lambda: loop.decode(lanes), preset)
        except Exception as exc:
            for lane in lanes:
                lane.tag.done(self, JobResult(error=exc, share=lane.billed))
            return
        for lane, arrays in zip(lanes, decoded, strict=True):
            flight: _InFlight = lane.tag
            job = flight.request.job
            share = lane.billed
            try:
                images = [self._to_image(array, preset) for array in arrays]
                if flight.plan is not None:
                    loading, began = self.load_seconds, time.perf_counter()
                    with _explain_out_of_memory(job, self.placement, preset=preset):
                        images = [
                            self._upscale(
                                preset,
                                image,
                                seed,
                                job,
                                flight.plan,
                                flight.progress,
                                flight.request.should_cancel,
                            )
                            for image, seed in zip(images, lane.seeds, strict=True)
                        ]
                    share += time.perf_counter() - began - (self.load_seconds - loading)
            except Exception as exc:
                flight.done(self, JobResult(error=exc, share=share))
                continue
            generated = [
                GeneratedImage(image, seed) for image, seed in zip(images, lane.seeds, strict=True)
            ]
            flight.done(self, JobResult(images=generated, share=share, batched=lane.most))

    def _make_room(self, preset: Preset) -> bool:
        """Drop the cached models ``preset`` does not use (a UNet call ran out of memory);
        False when there is none to drop."""
        keep = [("base", preset.base)]
        if not self.cache.droppable(keep):
            return False
        self.evicted_for_memory += self.cache.drop_all_but(keep)
        return True

    def _retry(self, call: Callable[[], Any], preset: Preset) -> Any:
        """``call()``; if it runs out of memory, drop the cached models this job does not
        use (other bases, refiners, upscalers) and try once more."""
        result, dropped = retry_out_of_memory(call, self.cache, [("base", preset.base)])
        self.evicted_for_memory += dropped
        return result

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

    def _to_image(self, array: np.ndarray, preset: Preset) -> Image.Image:
        if not np.isfinite(array).all():
            raise ModelUnavailable(
                f"preset {preset.name!r} produced NaN pixels in {self.placement.dtype}, even "
                "decoded again in float32 (the weights or latents overflowed). Set "
                'vae = "madebyollin/sdxl-vae-fp16-fix" for the preset, or '
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
            self.models.upscaler(preset),
            image,
            tile=preset.upscale_tile,
            padding=preset.upscale_padding,
            should_cancel=should_cancel,
        )
        refiner = self.models.refiner(preset)
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


@dataclass
class _InFlight:
    """What the engine keeps about one job while its lane is in the loop."""

    request: Request
    progress: _Progress
    plan: upscale_mod.RefinePlan | None
    started: float
    loading: float

    def done(self, engine: Engine, result: JobResult) -> None:
        """Stamp the job's engine time (weight loads excluded) and hand the result over."""
        loaded = engine.load_seconds - self.loading
        result.seconds = max(0.0, time.perf_counter() - self.started - loaded)
        if result.batched <= 1 and result.error is None:
            result.share = result.seconds  # it shared no step: all of its time is its own
        self.request.on_done(result)
