"""Predictor: ``setup()`` once, ``predict()`` per job (the cog shape).

Generation (engine) then finishing (cut-out, and a die cut when the job asks),
giving for each image of the batch the opaque PNG and its sticker PNG. Upload
jobs (``cutout``, ``split``) need only :meth:`Predictor.prepare` (presets, no
torch) and give sticker PNGs only; :meth:`Predictor.run` dispatches on the kind.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from sticker_maker.errors import ContentBlocked
from sticker_maker.inputs import CutoutInput, SplitInput
from sticker_maker.params import JobInput
from sticker_maker.presets import Preset, PresetRegistry, load_presets
from sticker_maker.safety import ImageScreen, SafetySettings, checks_images
from sticker_maker.worker import stickers as finishing_steps

LogFn = Callable[[str], None]


@dataclass
class Sticker:
    """One sticker output; ``image_png`` is the opaque image it came from (None: uploads).

    Both are encoded as ``ext`` says (the job's ``output_format``; PNG by default).
    """

    image_png: bytes | None
    sticker_png: bytes
    seed: int
    width: int  # of the opaque image (uploads: of the sticker)
    height: int
    sticker_width: int
    sticker_height: int
    ext: str = "png"
    #: the cut-out found nothing: the sticker is fully transparent (see README, "Empty")
    empty: bool = False

    def files(self) -> list[tuple[str, bytes, int, int]]:
        """``(output kind, encoded bytes, width, height)`` of each file to store."""
        files = [("sticker", self.sticker_png, self.sticker_width, self.sticker_height)]
        if self.image_png is not None:
            files.insert(0, ("image", self.image_png, self.width, self.height))
        return files


def png_bytes(image: Image.Image, parameters: str | None = None) -> bytes:
    """PNG bytes; ``parameters`` goes in the ``parameters`` tEXt chunk (see below)."""
    info = None
    if parameters:
        info = PngInfo()
        info.add_text("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1, pnginfo=info)
    return buf.getvalue()


def encode(
    image: Image.Image, fmt: str = "png", quality: int = 90, parameters: str | None = None
) -> bytes:
    """``image`` as ``png`` (with its ``parameters`` text), ``webp`` (transparency kept)
    or ``jpg`` (on white)."""
    if fmt == "png":
        return png_bytes(image, parameters)
    buf = io.BytesIO()
    if fmt == "webp":
        image.save(buf, format="WEBP", quality=quality, method=4)
    elif fmt == "jpg":
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()


def parameters_text(
    job: JobInput,
    preset: Preset,
    seed: int,
    size: tuple[int, int],
    job_id: str = "",
    index: int = 0,
) -> str:
    """How the image was made, in the text AUTOMATIC1111's web UI writes to the PNG
    ``parameters`` chunk (and ComfyUI, InvokeAI, civitai and others read): the prompt,
    then ``Negative prompt: …``, then ``Key: value`` pairs on one line. ``index``: the
    image's place in the job (a pack's sticker has its own prompt)."""
    pairs = [
        ("Steps", job.steps),
        ("Sampler", job.scheduler),
        ("CFG scale", f"{job.guidance_scale:g}"),
        ("Seed", seed),
        ("Size", f"{size[0]}x{size[1]}"),
        ("Model", preset.base),
    ]
    if preset.lora:
        lora = preset.lora + (f"/{preset.lora_weight_name}" if preset.lora_weight_name else "")
        pairs += [("Lora", lora), ("Lora scale", f"{job.lora_scale:g}")]
    if job.upscale:
        pairs.append(("Upscale steps", job.upscale_steps))
    if job.reference is not None:
        ref = job.reference
        pairs += [("IP-Adapter weight", f"{ref.ip_adapter_weight:g}")]
        pairs += [("IP-Adapter noise", f"{ref.ip_adapter_noise:g}")]
        if ref.strength is not None:
            pairs.append(("Denoising strength", f"{ref.strength:g}"))
    if job.expressions and index < len(job.expressions):
        pairs.append(("Expression", job.expressions[index].name))
    pairs.append(("Preset", job.preset))
    if job_id:
        pairs.append(("Job id", job_id))
    # a value with a comma or colon would break the key: value list, as A1111 quotes it
    line = ", ".join(f"{k}: {_quoted(str(v))}" for k, v in pairs)
    prompts = job.prompts()
    lines = [prompts[index] if index < len(prompts) else job.prompt]
    if job.negative_prompt:
        lines.append(f"Negative prompt: {job.negative_prompt}")
    return "\n".join([*lines, line])


def _quoted(value: str) -> str:
    return json.dumps(value) if ("," in value or ":" in value or "\n" in value) else value


def sticker_output(
    image: Image.Image | None,
    sticker: Image.Image,
    seed: int = 0,
    fmt: str = "png",
    quality: int = 90,
    parameters: str | None = None,
) -> Sticker:
    shown = image if image is not None else sticker
    return Sticker(
        image_png=(
            encode(image.convert("RGB"), fmt, quality, parameters) if image is not None else None
        ),
        sticker_png=encode(sticker, fmt, quality, parameters),
        seed=seed,
        width=shown.width,
        height=shown.height,
        sticker_width=sticker.width,
        sticker_height=sticker.height,
        ext=fmt,
        empty=is_empty(sticker),
    )


def is_empty(sticker: Image.Image) -> bool:
    """Whether a sticker is fully transparent (its cut-out found nothing)."""
    return "A" in sticker.getbands() and sticker.getchannel("A").getextrema()[1] == 0


@dataclass(eq=False)
class Task:
    """One generation job for :meth:`Predictor.predict_stream`, with its callbacks."""

    job: JobInput
    #: (stickers or the error, seconds in the model process, seconds billed), once
    on_result: Callable[[list[Sticker] | Exception, float, float], None]
    on_progress: Callable[[int, int], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    log: LogFn = lambda _line: None
    #: the safety level the job was admitted at (None: check its images if configured)
    safety: str | None = None
    #: written into each PNG's parameters (reproducing a sticker starts from its job)
    job_id: str = ""
    #: gets a live preview (JPEG bytes) every few steps, when the engine makes them and
    #: the job's images are not checked (a preview would show them before the check)
    on_preview: Callable[[bytes], None] | None = None
    #: the reference picture's bytes (a job with ``reference``), else None
    picture: bytes | None = None


class Predictor:
    #: set by prepare()
    presets: PresetRegistry | None = None

    def __init__(self) -> None:
        self.engine: Any = None  # an Engine, set by setup()
        #: the image check (set by setup_safety when an image model is configured)
        self.images: ImageScreen | None = None
        self.charge_blocked_images = False

    def setup_safety(self, settings: SafetySettings) -> None:
        """Load the image classifier, if one is configured (errors: ``InvalidInput``)."""
        self.charge_blocked_images = settings.charge_blocked_images
        self.images = ImageScreen.from_settings(settings)

    def screen(self, images: list[Image.Image], level: str | None, log: LogFn) -> None:
        """Refuse the job (:class:`ContentBlocked`, stage image) when the image check
        flags any of its images; nothing of it has been finished or stored yet."""
        if not self.checks_images(level):
            return
        started = time.perf_counter()
        flagged = self.images.flagged(images)
        log(
            f"image check: {len(images)} image(s) in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms"
            + (", refused" if any(flagged) else "")
        )
        if any(flagged):
            raise ContentBlocked("image", charged=self.charge_blocked_images)

    def checks_images(self, level: str | None) -> bool:
        """Whether a job admitted at safety ``level`` has its images checked."""
        return self.images is not None and (level is None or checks_images(level))

    def _previews(self, task: Task) -> Callable[[list[Image.Image]], None] | None:
        """The engine's preview callback for ``task``: None when it wants none, or when
        its images are checked (no pixel leaves before the check has passed)."""
        send = task.on_preview
        if send is None or self.checks_images(task.safety):
            return None
        from sticker_maker.engine.preview import strip_jpeg

        return lambda images: send(strip_jpeg(images))

    def setup(
        self,
        presets_file: str | None = None,
        cache_size: int = 2,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        """Read the presets and build the engine (models load on first use, then stay)."""
        from sticker_maker.engine.options import EngineOptions
        from sticker_maker.engine.pipeline import Engine

        registry = load_presets(Path(presets_file) if presets_file else None)
        options = EngineOptions(**engine_options) if engine_options else None
        self.engine = Engine(registry, cache_size=cache_size, options=options)

    def predict(
        self,
        job: JobInput,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        log: LogFn | None = None,
        safety: str | None = None,
        job_id: str = "",
        picture: bytes | None = None,
    ) -> list[Sticker]:
        """One generation (or pack) job (``picture``: its reference picture's bytes)."""
        assert self.engine is not None, "call setup() first"
        log = log or (lambda _line: None)
        preset = self.engine.presets.get(job.preset)
        started = time.perf_counter()
        loads_before = self.engine.loads
        load_seconds = self.engine.load_seconds
        images = self.engine.generate(
            job, on_progress=on_progress, should_cancel=should_cancel, picture=picture, on_log=log
        )
        loaded = [
            f"{kind} x{count - loads_before.get(kind, 0)}"
            for kind, count in self.engine.loads.items()
            if count != loads_before.get(kind, 0)
        ]
        if loaded:
            seconds = self.engine.load_seconds - load_seconds
            log(f"loaded models ({', '.join(loaded)}) in {seconds:.2f}s")
        size = f"{images[0].image.width}x{images[0].image.height}" if images else ""
        log(
            f"generated {len(images)} image(s) {size}"
            + (" (upscaled 2x and refined)" if job.upscale else "")
            + f" in {time.perf_counter() - started:.2f}s"
        )
        self.screen([g.image for g in images], safety, log)
        stickers = []
        for index, generated in enumerate(images):
            sticker = finishing_steps.finish(generated.image, preset, job.finishing, log)
            made = parameters_text(job, preset, generated.seed, generated.image.size, job_id, index)
            stickers.append(
                sticker_output(
                    generated.image,
                    sticker,
                    generated.seed,
                    job.output_format,
                    job.output_quality,
                    made,
                )
            )
        return stickers

    def predict_stream(
        self, tasks: list[Task], more: Callable[[], list[Task]] | None = None
    ) -> None:
        """Generation jobs through :meth:`Engine.run`: those with one batch key share each
        denoising step, and ``more()`` (asked between steps) adds jobs that arrived since.

        Each job is finished (cut-out, die cut) as soon as its images are ready, on a
        thread of its own so the denoising loop goes on meanwhile (jobs that join do not
        wait for other jobs' cut-outs), and ``task.on_result(stickers or error, seconds,
        share)`` is called once, from that thread: ``seconds`` its time in the model
        process (weight loading excluded), ``share`` what it is billed (its part of the
        shared steps, its own decode and its own finishing). Returns when all are done.
        """
        assert self.engine is not None, "call setup() first"
        engine = self.engine

        with ThreadPoolExecutor(1, thread_name_prefix="sticker-maker-finishing") as finishing:

            def request(task: Task) -> Any:
                from sticker_maker.engine.pipeline import Request

                def on_done(result: Any) -> None:
                    finishing.submit(self._finish, task, result, time.perf_counter())

                return Request(
                    task.job,
                    on_done,
                    task.on_progress,
                    task.should_cancel,
                    self._previews(task),
                    picture=task.picture,
                    on_log=task.log,
                )

            engine.run(
                [request(task) for task in tasks],
                (lambda: [request(task) for task in more()]) if more is not None else None,
            )

    def _finish(self, task: Task, result: Any, ready_at: float) -> None:
        """One job's images → its stickers, then ``task.on_result`` (``ready_at``: when
        the engine handed the images over; waiting for the finishing thread counts in
        the job's time, not in its bill)."""
        if result.error is not None:
            task.on_result(result.error, result.seconds, result.share)
            return
        began = time.perf_counter()
        job = task.job
        try:
            preset = self.engine.presets.get(job.preset)
            size = f"{result.images[0].image.width}x{result.images[0].image.height}"
            shared = f" in a batch of up to {result.batched} jobs" if result.batched > 1 else ""
            task.log(
                f"generated {len(result.images)} image(s) {size}{shared} in "
                f"{result.seconds:.2f}s (billed {result.share:.3f}s)"
            )
            self.screen([g.image for g in result.images], task.safety, task.log)
            stickers: list[Sticker] | Exception = [
                sticker_output(
                    g.image,
                    finishing_steps.finish(g.image, preset, job.finishing, task.log),
                    g.seed,
                    job.output_format,
                    job.output_quality,
                    parameters_text(job, preset, g.seed, g.image.size, task.job_id, n),
                )
                for n, g in enumerate(result.images)
            ]
        except Exception as exc:
            stickers = exc
        now = time.perf_counter()
        seconds = result.seconds + now - ready_at
        # a job that shared no step is billed its whole time, as when it runs alone
        share = seconds if result.batched <= 1 else result.share + now - began
        task.on_result(stickers, seconds, share)

    def prepare(self, presets_file: str | None = None) -> None:
        """What every job kind needs: the presets (no torch, no weights)."""
        self.presets = load_presets(Path(presets_file) if presets_file else None)

    def run(
        self,
        kind: str,
        input_json: str,
        upload: bytes | None = None,
        *,
        on_progress: Callable[[int, int], None],
        should_cancel: Callable[[], bool] | None = None,
        log: LogFn | None = None,
        safety: str | None = None,
    ) -> list[Sticker]:
        """One job of any kind (``upload``: the uploaded file of a cutout/split job, the
        reference picture of a generation or pack job;
        ``safety``: the level it was admitted at, for the image check)."""
        log = log or (lambda _line: None)
        if kind in ("generate", "pack"):
            return self.predict(
                JobInput.model_validate_json(input_json),
                on_progress=on_progress,
                should_cancel=should_cancel,
                log=log,
                safety=safety,
                picture=upload,
            )
        if self.presets is None:
            self.prepare()
        assert self.presets is not None
        if upload is None:
            raise ValueError(f"a {kind} job needs its uploaded image")
        if kind == "cutout":
            job = CutoutInput.model_validate_json(input_json)
            preset = self.presets.get(job.preset)
            sticker = finishing_steps.cutout(
                job, upload, preset, on_progress=on_progress, should_cancel=should_cancel, log=log
            )
            result = [sticker_output(None, sticker)]
        elif kind == "split":
            sheet = SplitInput.model_validate_json(input_json)
            preset = self.presets.get(sheet.preset)
            pieces = finishing_steps.split(
                sheet, upload, preset, on_progress=on_progress, should_cancel=should_cancel, log=log
            )
            result = [sticker_output(None, piece) for piece in pieces]
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        on_progress(3, 3)
        return result
