"""SDXL denoising with lanes that join and leave between steps (continuous batching).

The diffusers SDXL pipeline runs one fixed batch from the first step to the last, so a
job that arrives one step late waits for the whole call. Here every job is a *lane*:
its own prompt embeddings, latents, sampler state, generators and step counter. Each
step is one UNet call over the lanes in flight, each at its own timestep (the UNet
takes one timestep per sample); then every lane takes its own sampler step. A lane
that arrives between steps joins the next call; a lane that is done (or cancelled)
leaves at once and is decoded alone, without waiting for the others.

Every lane computes what ``StableDiffusionXLPipeline.__call__`` computes for its
images (prompt encoding, timesteps, initial noise from its generators, added time ids,
classifier-free guidance, the sampler step, the VAE decode), using the pipeline's own
helpers, so a lane's pixels equal a plain pipeline call with its seeds, to float
rounding (tests compare them). What no lane shares: nothing is padded or masked.

A lane may carry a reference picture (:class:`~sticker_maker.engine.reference.LaneReference`):
its IP-Adapter image embeddings and weight go into the same UNet call, per sample, and an
img2img lane starts from the picture's latents at a later timestep (fewer steps). A step's
UNet call is made in slices of at most ``max_samples`` rows when one call over every lane
ran out of memory (a big pack): the slices are halved until they fit.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from sticker_maker.engine import device as device_mod
from sticker_maker.engine import reference as reference_mod
from sticker_maker.engine.decode import (  # noqa: F401  (DECODE_*: re-exported)
    DECODE_BYTES_1024,
    DECODE_MAX,
    decode_latents,
    decode_slice,
)
from sticker_maker.engine.schedulers import draw_noise_on_cpu, make_scheduler, step_options


@dataclass(frozen=True)
class LaneSettings:
    """What every lane of one loop shares (the pipeline-wide settings of a batch key)."""

    width: int
    height: int
    steps: int
    guidance_scale: float
    scheduler: str
    #: the preset's sampler options (``timestep_spacing``, ``eta``, ...)
    scheduler_options: tuple[tuple[str, Any], ...] = ()


@dataclass(eq=False)
class Lane:
    """One job's images in the loop. ``prompts``, ``negatives`` and ``seeds``: one each
    per image (``negatives`` all empty: SDXL's zeroed negative embedding)."""

    prompts: Sequence[str]
    negatives: Sequence[str]
    seeds: Sequence[int]
    #: called after each of its steps with (done, total)
    on_step: Callable[[int, int], None] | None = None
    #: asked after each step; True drops the lane (it appears in ``step()``'s cancelled)
    should_cancel: Callable[[], bool] | None = None
    #: gets a small preview (a PIL image per image of the lane) every few steps, when
    #: the loop has a preview decoder
    on_preview: Callable[[list[Any]], None] | None = None
    #: the caller's own handle
    tag: Any = None
    #: a reference picture (IP-Adapter embeddings, img2img latents), or None
    reference: reference_mod.LaneReference | None = None

    # -- set by DenoiseLoop.add -------------------------------------------------------
    index: int = 0
    timesteps: Any = None
    #: seconds this lane is billed so far: its share of each shared step, by image
    #: count, plus its own prompt encoding and decode
    billed: float = 0.0
    #: the most lanes (jobs) that shared one of its steps
    most: int = 0
    _scheduler: Any = None
    _latents: Any = None
    _embeds: Any = None
    _text_embeds: Any = None
    _time_ids: Any = None
    _step_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.seeds)

    @property
    def total(self) -> int:
        return len(self.timesteps)

    @property
    def done(self) -> bool:
        return self.index >= self.total


class DenoiseLoop:
    """Lanes of one :class:`LaneSettings` on one SDXL pipeline (LoRA and VAE already set).

    ``add()`` lanes between steps, ``step()`` until ``active`` is empty; each ``step()``
    returns the lanes that finished (``decode()`` them) and those cancelled. Lanes added
    or decoded together share one text-encoder or VAE call.
    """

    def __init__(
        self,
        pipe: Any,
        scheduler_config: Any,
        settings: LaneSettings,
        previews: Any = None,
        max_samples: int | None = None,
        make_room: Callable[[], bool] | None = None,
    ) -> None:
        self.pipe = pipe
        #: a :class:`~sticker_maker.engine.preview.PreviewDecoder`, or None (no previews)
        self.previews = previews
        self.scheduler_config = scheduler_config
        self.settings = settings
        self.device = pipe._execution_device
        # Guidance ≤ 1 is no guidance: one UNet pass per image, no unconditional half.
        self.cfg = settings.guidance_scale > 1 and pipe.unet.config.time_cond_proj_dim is None
        #: a torch.compile'd UNet: its inputs' batch dimension is marked dynamic
        self.compiled = is_compiled(pipe.unet)
        self.active: list[Lane] = []
        #: the IP-Adapter scales last set (each adapter: 1 when a lane uses it, else 0)
        self._scales: list[float] | None = None
        #: the most samples in one UNet call (None: all the step's samples in one call);
        #: halved when a call runs out of memory (``halvings`` counts it)
        self.max_samples = max_samples
        self.halvings = 0
        #: asked when a UNet call runs out of memory: frees memory if it can (True: retry)
        self.make_room = make_room

    def _unet(
        self,
        sample: torch.Tensor,
        t_in: torch.Tensor,
        hidden: torch.Tensor,
        added: dict[str, Any],
        attention: dict[str, Any] | None,
    ) -> torch.Tensor:
        """The UNet over the step's samples: one call, or calls of at most
        ``max_samples`` rows (a big pack). Out of memory, ``make_room()`` is asked first
        (the engine drops idle cached models: then the same call again); else the slices
        are halved and the call made again, down to one image (both halves of a guided
        one) per call; the bound then stays with the loop. An image that does not fit
        alone raises the error."""
        rows = sample.shape[0]
        least = 2 if self.cfg else 1
        while True:
            per = min(self.max_samples or rows, rows)
            error: Exception | None = None
            try:
                parts = [
                    self.pipe.unet(
                        sample[at : at + per],
                        t_in[at : at + per],
                        encoder_hidden_states=hidden[at : at + per],
                        added_cond_kwargs=_rows(added, at, per),
                        cross_attention_kwargs=_rows(attention, at, per),
                        return_dict=False,
                    )[0]
                    for at in range(0, rows, per)
                ]
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            except Exception as exc:
                if not device_mod.is_out_of_memory(exc):
                    raise
                error = exc.with_traceback(None)  # its frames hold the failed call's tensors
            # Out of the except block: the failed call's tensors can go.
            if self.make_room is not None and self.make_room():
                continue
            if per <= least:
                raise error
            error = None
            self.max_samples = max(least, per // 2)
            self.halvings += 1
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def _blank(self) -> torch.Tensor:
        """A one-token image embedding for IP-Adapters no lane has a picture for."""
        encoder = self.pipe.image_encoder
        dim = encoder.config.hidden_size
        param = next(encoder.parameters())
        return torch.zeros((1, 1, 1, dim), device=param.device, dtype=param.dtype)

    # -- a lane joins ----------------------------------------------------------------

    def add(self, lanes: Sequence[Lane]) -> None:
        """Encode the lanes' prompts (in one call), set each one's sampler and draw its
        initial noise: the pipeline's steps 3-7, lane by lane."""
        if not lanes:
            return
        started = time.perf_counter()
        pipe, s = self.pipe, self.settings
        # 3. Prompts of all the lanes at once (all-empty negatives are None: SDXL then
        # uses zeros; a loop's lanes share that, it is part of the batch key).
        prompts = [p for lane in lanes for p in lane.prompts]
        negatives = [n for lane in lanes for n in lane.negatives]
        embeds, neg_embeds, pooled, neg_pooled = pipe.encode_prompt(
            prompt=prompts,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=self.cfg,
            negative_prompt=negatives if any(negatives) else None,
        )
        projection = (
            pipe.text_encoder_2.config.projection_dim
            if pipe.text_encoder_2 is not None
            else int(pooled.shape[-1])
        )
        time_ids = pipe._get_add_time_ids(
            (s.height, s.width),
            (0, 0),
            (s.height, s.width),
            dtype=embeds.dtype,
            text_encoder_projection_dim=projection,
        )
        at = 0
        for lane in lanes:
            mine = slice(at, at + lane.size)
            at += lane.size
            # 4. The lane's own sampler (the SDE one seeded per image) and timesteps.
            options = dict(s.scheduler_options)
            scheduler = make_scheduler(
                s.scheduler, self.scheduler_config, seeds=list(lane.seeds), options=options
            )
            scheduler.set_timesteps(s.steps, device=self.device)
            timesteps, begin = _cut(scheduler, s.steps, lane.reference)
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(begin)
            # 5. Initial noise, one CPU generator per image (same pixels on any device).
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in lane.seeds]
            shape = (
                lane.size,
                pipe.unet.config.in_channels,
                s.height // pipe.vae_scale_factor,
                s.width // pipe.vae_scale_factor,
            )
            latents = randn_tensor(
                shape, generator=generators, device=self.device, dtype=embeds.dtype
            )
            ref = lane.reference
            if ref is not None and ref.latents is not None:
                # img2img: the picture's latents, noised to the lane's first timestep.
                start = ref.latents.to(self.device, embeds.dtype).expand(lane.size, -1, -1, -1)
                latents = scheduler.add_noise(start, latents, timesteps[:1].repeat(lane.size))
            else:
                latents = latents * scheduler.init_noise_sigma
            # 6-7. Sampler kwargs (ancestral samplers draw per-image noise from the
            # generators) and SDXL's added conditioning (the size, no crop).
            lane_embeds, lane_pooled = embeds[mine], pooled[mine]
            lane_ids = time_ids.repeat(lane.size, 1)
            if self.cfg:
                lane_embeds = torch.cat([neg_embeds[mine], lane_embeds])
                lane_pooled = torch.cat([neg_pooled[mine], lane_pooled])
                lane_ids = torch.cat([lane_ids, lane_ids])
            lane._scheduler = scheduler
            lane.timesteps = timesteps
            lane._latents = latents
            lane._embeds = lane_embeds.to(self.device)
            lane._text_embeds = lane_pooled.to(self.device)
            lane._time_ids = lane_ids.to(self.device)
            draw_noise_on_cpu(scheduler, lane._latents)  # the SDE sampler's noise
            lane._step_kwargs = _step_kwargs(scheduler, generators, options)
            lane.index = 0
        _bill(lanes, time.perf_counter() - started)
        self.active.extend(lanes)

    # -- one step of every lane ------------------------------------------------------

    def step(self) -> tuple[list[Lane], list[Lane]]:
        """One UNet call over all active lanes, then each lane's sampler step.

        Returns ``(finished, cancelled)``: lanes that took their last step, and lanes
        whose ``should_cancel()`` said so; both have left the loop.
        """
        started = time.perf_counter()
        lanes = list(self.active)
        halves = 2 if self.cfg else 1
        # 8.1 Model inputs, lane by lane: [uncond..., cond...] per lane when guided.
        inputs, timesteps, embeds, text_embeds, time_ids = [], [], [], [], []
        for lane in lanes:
            t = lane.timesteps[lane.index]
            x = torch.cat([lane._latents] * halves)
            inputs.append(lane._scheduler.scale_model_input(x, t))
            timesteps.append(t.reshape(1).expand(x.shape[0]))
            embeds.append(lane._embeds)
            text_embeds.append(lane._text_embeds)
            time_ids.append(lane._time_ids)
        # 8.2 One UNet call for all of them, each sample at its own timestep. Timesteps
        # always go in as float32 (Euler's are float, DPM++/UniPC's int64: the UNet's
        # embedding takes .float() of them either way), so a compiled UNet sees one dtype.
        sample = torch.cat(inputs)
        batch = {
            "encoder_hidden_states": torch.cat(embeds),
            "text_embeds": torch.cat(text_embeds),
            "time_ids": torch.cat(time_ids),
        }
        t_in = torch.cat(timesteps).to(self.device, torch.float32)
        added = {"text_embeds": batch["text_embeds"], "time_ids": batch["time_ids"]}
        attention: dict[str, Any] | None = None
        if adapters := reference_mod.adapters(self.pipe):
            # IP-Adapter: every sample's image embeddings, each lane's weight per sample.
            image_embeds, masks, scales = reference_mod.step_inputs(
                lanes, adapters, halves, tuple(sample.shape[-2:]), self._blank()
            )
            if scales != self._scales:
                reference_mod.set_scales(self.pipe, scales)
                self._scales = scales
            added["image_embeds"] = [e.to(self.device, sample.dtype) for e in image_embeds]
            if any(m is not None for m in masks):
                attention = {"ip_adapter_masks": masks}
        if self.compiled and sample.shape[0] > 1:
            # One graph for every batch size ≥ 2 (jobs joining and leaving); batch 1
            # specialises once. Both are warmed up at load (see models.warm_up).
            for tensor in (sample, t_in, *batch.values()):
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        noise = self._unet(sample, t_in, batch["encoder_hidden_states"], added, attention)
        # 8.3 Guidance and the sampler step, lane by lane.
        at = 0
        for lane in lanes:
            n = lane.size * halves
            pred = noise[at : at + n]
            at += n
            if self.cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + self.settings.guidance_scale * (cond - uncond)
            t = lane.timesteps[lane.index]
            lane._latents = lane._scheduler.step(
                pred, t, lane._latents, **lane._step_kwargs, return_dict=False
            )[0]
            lane.index += 1
        # Bill the call by image count, then tell each lane where it is.
        _bill(lanes, time.perf_counter() - started)
        finished, cancelled = [], []
        for lane in lanes:
            lane.most = max(lane.most, len(lanes))
            if lane.on_step is not None:
                lane.on_step(lane.index, lane.total)
            if lane.done:
                finished.append(lane)
            elif lane.should_cancel is not None and lane.should_cancel():
                cancelled.append(lane)
        for lane in finished + cancelled:
            self.active.remove(lane)
        self._preview([lane for lane in lanes if lane not in cancelled])
        return finished, cancelled

    def _preview(self, lanes: Sequence[Lane]) -> None:
        """The lanes whose preview is due: one tiny-autoencoder call for all of them, each
        lane's images to its ``on_preview``. A failed preview is dropped, never the job."""
        if self.previews is None:
            return
        due = [
            lane
            for lane in lanes
            if lane.on_preview is not None and self.previews.due(lane.index, lane.total)
        ]
        if not due:
            return
        started = time.perf_counter()
        try:
            images = self.previews.decode(torch.cat([lane._latents for lane in due]))
        except Exception:  # a preview is a courtesy: the job goes on without it
            return
        at = 0
        for lane in due:
            assert lane.on_preview is not None
            lane.on_preview(images[at : at + lane.size])
            at += lane.size
        _bill(due, time.perf_counter() - started)

    def drop(self, lane: Lane) -> None:
        """Take a lane out between steps (cancelled before its first step, say)."""
        if lane in self.active:
            self.active.remove(lane)

    # -- a finished lane -------------------------------------------------------------

    def decode(self, lanes: Sequence[Lane]) -> list[list[np.ndarray]]:
        """The lanes' images as float arrays in [0, 1], HxWx3, lane by lane: the
        pipeline's step 9, in slices of at most :func:`decode_slice` images (a float32
        SDXL decode takes ~3.8 GiB per 1024² image), each image finite (see
        :func:`decode_latents`)."""
        if not lanes:
            return []
        started = time.perf_counter()
        pipe = self.pipe
        latents = torch.cat([lane._latents for lane in lanes])
        per_call = decode_slice(pipe.vae, latents.shape)
        images = [
            decode_latents(pipe.vae, latents[at : at + per_call])
            for at in range(0, latents.shape[0], per_call)
        ]
        image = torch.cat(images)
        if getattr(pipe, "watermark", None) is not None:
            image = pipe.watermark.apply_watermark(image)
        arrays = list(pipe.image_processor.postprocess(image, output_type="np"))
        out, at = [], 0
        for lane in lanes:
            out.append(arrays[at : at + lane.size])
            at += lane.size
            lane._latents = None  # free the lane's tensors now
            lane._embeds = lane._text_embeds = lane._time_ids = None
        _bill(lanes, time.perf_counter() - started)
        return out


def is_compiled(module: Any) -> bool:
    """Whether ``module.compile()`` was called (torch.compile in place)."""
    return getattr(module, "_compiled_call_impl", None) is not None


def _bill(lanes: Sequence[Lane], seconds: float) -> None:
    """Split work done for several lanes at once between them, by image count."""
    images = sum(lane.size for lane in lanes)
    for lane in lanes:
        lane.billed += seconds * lane.size / images


def _rows(kwargs: dict[str, Any] | None, at: int, per: int) -> dict[str, Any] | None:
    """``kwargs`` of a UNet call with every tensor (and every tensor of a list: image
    embeddings, IP-Adapter masks) cut to rows ``at:at + per``."""
    if kwargs is None:
        return None
    cut: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, list):
            cut[key] = [v[at : at + per] if v is not None else None for v in value]
        else:
            cut[key] = value[at : at + per]
    return cut


def _cut(
    scheduler: Any, steps: int, reference: reference_mod.LaneReference | None
) -> tuple[Any, int]:
    """The lane's timesteps and the sampler's begin index: all of them, or for img2img
    the last ``strength`` of them (at least one), as diffusers' img2img pipelines cut."""
    if reference is None or reference.latents is None or reference.strength is None:
        return scheduler.timesteps, 0
    keep = min(max(int(steps * reference.strength), 1), steps)
    begin = (steps - keep) * scheduler.order
    return scheduler.timesteps[begin:], begin


def _step_kwargs(
    scheduler: Any, generators: list[torch.Generator], options: dict[str, Any]
) -> dict[str, Any]:
    """What the sampler's ``step()`` takes of eta (the preset's, else 0) and the generators
    (the pipeline's ``prepare_extra_step_kwargs``, for this lane's own sampler)."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = step_options(scheduler, options)
    if "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs
