"""What the SDK hands back: jobs and their output files (sync and async flavours)."""

from __future__ import annotations

import base64
import inspect
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from PIL.Image import Image

    from sticker_maker.sdk._client import AsyncClient, Client

TERMINAL = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class Progress:
    """Denoising progress: ``step`` of ``total``."""

    step: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass(frozen=True)
class Metrics:
    """Seconds spent queued, computing (without weight loading), and in all."""

    queue_time: float | None = None
    predict_time: float | None = None
    total_time: float | None = None


# -- files ----------------------------------------------------------------------


def _tag_expression(out: Any, data: dict[str, Any]) -> None:
    """A pack's sticker: its expression and emoji, and its expression in its file name
    (a pack's stickers share one seed)."""
    out.expression, out.emoji = data.get("expression"), data.get("emoji")
    if out.expression:
        part = re.sub(r"[^a-z0-9]+", "-", str(out.expression).lower()).strip("-") or "x"
        stem, dot, ext = out.filename.rpartition(".")
        sticker = stem.endswith("-sticker")
        base = stem.removesuffix("-sticker")
        out.filename = f"{base}-{part}{'-sticker' if sticker else ''}{dot}{ext}"


@dataclass(eq=False)
class _FileFields:
    url: str
    kind: str  # "image" (as generated) | "sticker" (transparent cut-out)
    index: int  # which sample of the batch
    seed: int
    width: int
    height: int
    content_type: str = "image/png"
    #: the file name :meth:`save` uses inside a folder
    filename: str = ""
    #: the job it belongs to: with ``index``, what exports and packs name a sticker by
    #: (``client.exports.sticker(output, "telegram")``)
    job_id: str = ""
    _data: bytes | None = field(default=None, repr=False)
    #: a pack's sticker: its expression and emoji (None otherwise)
    expression: str | None = None
    emoji: str | None = None

    @classmethod
    def _parse(cls, data: dict[str, Any], stem: str, job_id: str = "") -> Any:
        suffix = "-sticker" if data.get("kind") == "sticker" else ""
        ext = str(data.get("url", "")).rsplit(".", 1)[-1] or "png"
        return cls(
            url=data["url"],
            kind=data.get("kind", "image"),
            index=int(data.get("index", 0)),
            seed=int(data.get("seed", 0)),
            width=int(data.get("width", 0)),
            height=int(data.get("height", 0)),
            content_type=data.get("content_type", "image/png"),
            filename=f"{stem}-{data.get('seed', 0)}{suffix}.{ext}",
            job_id=job_id,
        )

    def _target(self, path: str | Path, folder: bool = False) -> Path:
        """``path`` itself, or ``path/filename`` for a folder (existing, or ``folder=True``)."""
        target = Path(path)
        if folder or target.is_dir() or str(path).endswith(("/", "\\")):
            target = target / self.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


@dataclass(eq=False)
class OutputFile(_FileFields):
    """One output image. ``read()`` downloads it once; ``save()`` and ``to_pil()`` reuse that."""

    _client: Client | None = field(default=None, repr=False)

    def read(self) -> bytes:
        """The file's bytes (downloaded on first use, then kept)."""
        if self._data is None:
            assert self._client is not None
            self._data = self._client._download(self.url)
        return self._data

    def save(self, path: str | Path) -> Path:
        """Write the file to ``path``: a file name, or a folder (existing, or ending in ``/``)
        to put it in as :attr:`filename`."""
        target = self._target(path)
        target.write_bytes(self.read())
        return target

    def to_pil(self) -> Image:
        """The image as a PIL image (RGBA for stickers)."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.read()))
        image.load()
        return image


@dataclass(eq=False)
class AsyncOutputFile(_FileFields):
    """One output image (async): ``await read()``, ``await save()``, ``await to_pil()``."""

    _client: AsyncClient | None = field(default=None, repr=False)

    async def read(self) -> bytes:
        if self._data is None:
            assert self._client is not None
            self._data = await self._client._download(self.url)
        return self._data

    async def save(self, path: str | Path) -> Path:
        target = self._target(path)
        target.write_bytes(await self.read())
        return target

    async def to_pil(self) -> Image:
        from PIL import Image

        image = Image.open(io.BytesIO(await self.read()))
        image.load()
        return image


# -- jobs -----------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def file_stem(prompt: str) -> str:
    """``"Cute cat!"`` → ``"cute-cat"``: the start of saved file names."""
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "sticker"


@dataclass(eq=False)
class _JobFields:
    id: str
    status: str  # queued | running | succeeded | failed | canceled
    preset: str
    input: dict[str, Any] = field(repr=False)
    output: list[Any] = field(default_factory=list, repr=False)
    error: str | None = None
    #: why it failed, when the service says (``content_blocked``: its image was refused)
    error_code: str | None = None
    logs: str = field(default="", repr=False)
    progress: Progress = field(default_factory=Progress)
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    #: queued jobs ahead of this one (only while queued)
    queue_position: int | None = None
    #: the latest live preview (JPEG bytes) while ``wait(on_progress=…)`` follows the
    #: job's events, when the server makes previews; None otherwise
    preview: bytes | None = field(default=None, repr=False)
    created_at: datetime | None = field(default=None, repr=False)
    started_at: datetime | None = field(default=None, repr=False)
    completed_at: datetime | None = field(default=None, repr=False)
    #: the envelope as the service sent it
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    _file_class: Any = field(default=None, init=False, repr=False)

    @classmethod
    def _from_dict(cls, data: dict[str, Any], client: Any) -> Any:
        job = cls(
            id=data["id"],
            status=data["status"],
            preset=data.get("preset", ""),
            input={},
            _client=client,  # type: ignore[call-arg]
        )
        job._apply(data)
        return job

    def _apply(self, data: dict[str, Any]) -> None:
        stem = file_stem(str((data.get("input") or {}).get("prompt", "")))
        progress = data.get("progress") or {}
        metrics = data.get("metrics") or {}
        self.status = data["status"]
        self.preset = data.get("preset", self.preset)
        self.input = dict(data.get("input") or {})
        self.output = []
        for item in data.get("output") or []:
            out = self._file_class._parse(item, stem, self.id)
            out._client = self._client  # type: ignore[attr-defined]
            _tag_expression(out, item)
            self.output.append(out)
        self.error = data.get("error")
        self.error_code = data.get("error_code")
        self.logs = data.get("logs") or ""
        self.progress = Progress(int(progress.get("step") or 0), int(progress.get("total") or 0))
        self.metrics = Metrics(
            metrics.get("queue_time"), metrics.get("predict_time"), metrics.get("total_time")
        )
        self.queue_position = data.get("queue_position")
        self.created_at = _time(data.get("created_at"))
        self.started_at = _time(data.get("started_at"))
        self.completed_at = _time(data.get("completed_at"))
        self.raw = data

    @property
    def done(self) -> bool:
        """True once the job is succeeded, failed or canceled."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def images(self) -> list[Any]:
        """The images as generated (opaque), one per sample."""
        return [o for o in self.output if o.kind == "image"]

    @property
    def stickers(self) -> list[Any]:
        """The transparent cut-outs, one per sample."""
        return [o for o in self.output if o.kind == "sticker"]

    @property
    def seed(self) -> int | None:
        return self.input.get("seed")

    def _check(self) -> None:
        from sticker_maker.sdk._errors import JobCanceledError, JobFailedError

        if self.status == "canceled":
            raise JobCanceledError(self)
        if self.status == "failed":
            raise JobFailedError(self)

    def _state(self) -> tuple[Any, ...]:
        return (
            self.status,
            self.queue_position,
            self.progress.step,
            self.progress.total,
            self.preview,
        )

    def _event(self, event: str, data: Any) -> bool:
        """Apply one event of ``/v1/jobs/{id}/events``; True when it was the last."""
        if event == "done":
            self._apply(data)
            return True
        if event == "queue":
            self.status, self.queue_position = "queued", data["position"]
        elif event == "progress":
            self.status, self.queue_position = "running", None
            self.progress = Progress(int(data["step"]), int(data["total"]))
        elif event == "logs":
            self.logs += data["text"]
        elif event == "preview":
            self.preview = base64.b64decode(str(data["image"]).partition(",")[2])
        return False

    def _events_request(self, remaining: float | None) -> tuple[str, dict[str, Any]]:
        client: Any = self._client
        read = None if remaining is None else max(0.1, remaining)
        timeout = httpx.Timeout(client.timeout, read=read)
        headers = client._headers({"Accept": "text/event-stream"}, auth=True)
        return client._url(f"/v1/jobs/{self.id}/events"), {"headers": headers, "timeout": timeout}


ProgressCallback = Callable[[Any], Any]


class _Backoff:
    """Poll gaps: 0.1 s growing by half each time up to ``limit``."""

    def __init__(self, limit: float) -> None:
        self.gap, self.limit = 0.1, limit

    def next(self, remaining: float | None) -> float:
        gap = self.gap if remaining is None else max(0.0, min(self.gap, remaining))
        self.gap = min(self.gap * 1.5, self.limit)
        return gap


@dataclass(eq=False)
class Job(_JobFields):
    """A job on the service. ``refresh()``, ``wait()``, ``cancel()``, ``save()``.

    ``images`` are the generated images, ``stickers`` their transparent cut-outs
    (:class:`OutputFile`: ``read()``, ``save(path)``, ``to_pil()``).
    """

    _client: Client = field(default=None, repr=False)  # type: ignore[assignment]
    _file_class: Any = field(default=OutputFile, init=False, repr=False)

    def refresh(self) -> Job:
        """Fetch the job's current state (in place) and return it."""
        self._apply(self._client._request("GET", f"/v1/jobs/{self.id}").json())
        return self

    def cancel(self) -> Job:
        """Cancel: a queued job ends at once, a running one at its next step."""
        self._apply(self._client._request("POST", f"/v1/jobs/{self.id}/cancel").json())
        return self

    def wait(
        self,
        timeout: float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = 1.0,
    ) -> Job:
        """Block until the job finishes; return it, or raise if it failed.

        ``on_progress(job)`` is called when the status, queue position or step
        changes. Raises :class:`JobFailedError` / :class:`JobCanceledError`, or
        :class:`WaitTimeoutError` after ``timeout`` seconds (the job keeps running).
        """
        from sticker_maker.sdk._client import _monotonic, _sleep
        from sticker_maker.sdk._errors import WaitTimeoutError

        deadline = None if timeout is None else _monotonic() + timeout
        backoff, last = _Backoff(poll_interval), None
        if on_progress is not None and not self.done:
            last = self._follow(deadline, on_progress)
        while True:
            if on_progress is not None and self._state() != last:
                last = self._state()
                on_progress(self)
            if self.done:
                break
            remaining = None if deadline is None else deadline - _monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(self, timeout or 0.0)
            _sleep(backoff.next(remaining))
            self.refresh()
        self._check()
        return self

    def _follow(self, deadline: float | None, on_progress: ProgressCallback) -> Any:
        """Follow the job's event stream, calling ``on_progress`` on each change, until it
        ends or cannot be followed (then ``wait`` polls); the last state reported."""
        from sticker_maker.sdk import _events
        from sticker_maker.sdk._client import _monotonic

        last = self._state()
        on_progress(self)
        remaining = None if deadline is None else deadline - _monotonic()
        url, options = self._events_request(remaining)
        try:
            with self._client._http.stream("GET", url, **options) as response:
                if not _events.usable(response):
                    return last
                for event, data in _events.parse(response.iter_lines()):
                    ended = self._event(event, data)
                    if self._state() != last:
                        last = self._state()
                        on_progress(self)
                    if ended:
                        break
        except _events.FALLBACK_ERRORS:
            pass  # read timeout (the deadline), a dropped stream: polling takes over
        return last

    def save(
        self, folder: str | Path = ".", *, kinds: tuple[str, ...] = ("image", "sticker")
    ) -> list[Path]:
        """Save the outputs into ``folder`` as ``<prompt>-<seed>.png`` and ``…-sticker.png``."""
        return [o.save(o._target(folder, folder=True)) for o in self.output if o.kind in kinds]


@dataclass(eq=False)
class AsyncJob(_JobFields):
    """A job on the service (async): ``await refresh()``, ``wait()``, ``cancel()``, ``save()``."""

    _client: AsyncClient = field(default=None, repr=False)  # type: ignore[assignment]
    _file_class: Any = field(default=AsyncOutputFile, init=False, repr=False)

    async def refresh(self) -> AsyncJob:
        self._apply((await self._client._request("GET", f"/v1/jobs/{self.id}")).json())
        return self

    async def cancel(self) -> AsyncJob:
        self._apply((await self._client._request("POST", f"/v1/jobs/{self.id}/cancel")).json())
        return self

    async def wait(
        self,
        timeout: float | None = None,
        *,
        on_progress: Callable[[AsyncJob], Any | Awaitable[Any]] | None = None,
        poll_interval: float = 1.0,
    ) -> AsyncJob:
        """Like :meth:`Job.wait`; ``on_progress`` may be a plain or an async function."""
        from sticker_maker.sdk._client import _asleep, _monotonic
        from sticker_maker.sdk._errors import WaitTimeoutError

        deadline = None if timeout is None else _monotonic() + timeout
        backoff, last = _Backoff(poll_interval), None
        if on_progress is not None and not self.done:
            last = await self._follow(deadline, on_progress)
        while True:
            if on_progress is not None and self._state() != last:
                last = self._state()
                result = on_progress(self)
                if inspect.isawaitable(result):
                    await result
            if self.done:
                break
            remaining = None if deadline is None else deadline - _monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(self, timeout or 0.0)
            await _asleep(backoff.next(remaining))
            await self.refresh()
        self._check()
        return self

    async def _follow(self, deadline: float | None, on_progress: Callable[..., Any]) -> Any:
        """Like :meth:`Job._follow`."""
        from sticker_maker.sdk import _events
        from sticker_maker.sdk._client import _monotonic

        async def report() -> None:
            result = on_progress(self)
            if inspect.isawaitable(result):
                await result

        last = self._state()
        await report()
        remaining = None if deadline is None else deadline - _monotonic()
        url, options = self._events_request(remaining)
        try:
            async with self._client._http.stream("GET", url, **options) as response:
                if not _events.usable(response):
                    return last
                async for event, data in _events.aparse(response.aiter_lines()):
                    ended = self._event(event, data)
                    if self._state() != last:
                        last = self._state()
                        await report()
                    if ended:
                        break
        except _events.FALLBACK_ERRORS:
            pass
        return last

    async def save(
        self, folder: str | Path = ".", *, kinds: tuple[str, ...] = ("image", "sticker")
    ) -> list[Path]:
        return [
            await o.save(o._target(folder, folder=True)) for o in self.output if o.kind in kinds
        ]
