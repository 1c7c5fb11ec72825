"""What :meth:`Engine.run <sticker_maker.engine.pipeline.Engine.run>` takes and gives:
a :class:`Request` per job, a :class:`JobResult` per job, and the step counter that
reports a job's progress over its phases (denoise, then refine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from sticker_maker.params import JobInput

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int


@dataclass
class JobResult:
    """One job's outcome from :meth:`Engine.run`: ``images`` or ``error``
    (:class:`JobCanceled` for a job cancelled while it ran).

    ``seconds``: the job's time in the engine, from joining the denoising loop to its
    last image (weight loading excluded); ``share``: what it is billed, its part of
    each shared denoising step (split by image count) plus its own prompt encoding,
    decode and upscale; a job that shared no step is billed its ``seconds``.
    """

    images: list[GeneratedImage] = field(default_factory=list)
    error: Exception | None = None
    seconds: float = 0.0
    share: float = 0.0
    #: the most jobs that shared one of its denoising steps
    batched: int = 1


@dataclass(eq=False)
class Request:
    """One generation job for :meth:`Engine.run`; ``on_done`` gets its result, once."""

    job: JobInput
    on_done: Callable[[JobResult], None]
    on_progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None
    #: gets the job's live preview images every few steps (when the engine makes them)
    on_preview: Callable[[list[Image.Image]], None] | None = None
    #: the reference picture's bytes (the job's ``reference.image``), when it has one
    picture: bytes | None = None
    #: gets lines for the job's logs (which part of the picture was used, ...)
    on_log: Callable[[str], None] | None = None


MoreFn = Callable[[], list[Request]]


class _Progress:
    """One step counter over the phases of a job (denoise, then refine)."""

    def __init__(self, report: ProgressFn | None, totals: dict[str, int]) -> None:
        self.report = report
        self.totals = dict(totals)
        self.done = 0

    def set_total(self, phase: str, total: int) -> None:
        self.totals[phase] = total

    def denoised(self, _done: int, total: int) -> None:
        """One denoising step (``total``: samplers of order 2 take more calls)."""
        self.set_total("denoise", total)
        self.step()

    def step(self) -> None:
        self.done += 1
        if self.report is not None:
            total = sum(self.totals.values())
            self.report(min(self.done, total), total)
