"""The model process. The parent sends jobs over a pipe; this process owns torch and the weights.

A crash or a stuck model here cannot take the API down: the parent sees the
pipe close (or kills this process) and fails the job.

Messages, parent → child::

    ("predict", job_id, kind, input_json, upload, safety)
                                       upload: the uploaded file's bytes (cutout, split;
                                       generate and pack: the reference picture) or
                                       None; safety: the job's content
                                       safety level (None: check images if configured)
    ("batch", seq, [(slot, job_id, kind, input_json, upload, safety), ...])
    ("join", seq, [(slot, job_id, kind, input_json, upload, safety), ...])
    ("stop",)

Messages, child → parent::

    ("ready",)                         setup() finished (("ready", device type) when the
                                       config asks for "report_device")
    ("progress", step, total)
    ("log", line)
    ("preview", jpeg)                  a live preview of a generation job (JPEG bytes),
                                       every few steps when the engine makes them
    ("done", [Sticker], predict_time)
    ("canceled", predict_time)
    ("error", message, predict_time, code, billed)
                                       code: the error's code (``content_blocked``…) or
                                       None; billed: seconds to bill all the same (a
                                       refused image, when the operator charges it) or None

For a ``batch`` each of these comes wrapped as ``("job", job_id, message)``, ``done``
with a third value, the seconds billed (``None``: its ``predict_time``). Generation jobs
of a batch denoise together (:meth:`Predictor.predict_stream`), and a ``join`` that
arrives meanwhile adds its jobs to the running denoising loop at the next step (one
that arrives after the loop ended starts a batch of its own). ``("batch_end", seq)``
says every job sent in messages up to ``seq`` has had its last word. The job in
``slot`` is cancelled by setting ``flags[slot]`` (a shared byte array), all of them by
the ``cancel`` event.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING, Any

from sticker_maker.errors import JobCanceled, StickerMakerError

#: job kinds the engine denoises (batched together): a pack is a generation job too
GENERATION_KINDS = ("generate", "pack")

if TYPE_CHECKING:
    from sticker_maker.jobs import Job
    from sticker_maker.storage import Storage
    from sticker_maker.worker.predictor import Predictor


def job_message(job: Job, storage: Storage) -> tuple[Any, ...]:
    """The parent's ``predict`` message for ``job`` (reads an upload job's input file)."""
    upload = None
    for name in job.input_files:
        try:
            upload = storage.get(name)
        except FileNotFoundError:
            raise RuntimeError(
                "the uploaded image is no longer in storage (outputs and uploads are kept "
                "for a limited time); upload it again"
            ) from None
    return ("predict", job.id, job.kind, job.input.model_dump_json(), upload, job.safety)


def _error(exc: StickerMakerError, seconds: float, share: float | None = None) -> tuple[Any, ...]:
    """The ``error`` message for a known error (a refused image may be billed)."""
    billed = (share if share is not None else seconds) if getattr(exc, "charged", False) else None
    return ("error", exc.message, seconds, exc.code, billed)


def _prepare(predictor: Predictor, config: dict[str, Any]) -> str | None:
    """Presets only: all that upload jobs need (no torch). An error string, or None."""
    try:
        predictor.prepare(config.get("presets_file"))
    except Exception as exc:
        return f"worker setup failed: {exc}"
    return None


def _setup_safety(predictor: Predictor, config: dict[str, Any]) -> None:
    """The image check from the worker's settings (else the environment's): it loads or
    the setup fails, so generation jobs fail rather than run unchecked."""
    from sticker_maker.safety import SafetySettings

    given = config.get("safety")
    settings = SafetySettings.from_dict(given) if given else SafetySettings.from_env()
    predictor.setup_safety(settings)


def _exit_with_parent() -> None:
    """Leave stopping to the parent, and die with it.

    Ctrl-C and a SIGTERM sent to the whole process group (a terminal, systemd's default
    kill mode) are the parent's to handle: it drains or hands back the running job and
    then stops this process. On Linux this process also dies when the parent dies, even
    by SIGKILL, so no orphan keeps holding the GPU.
    """
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is None or threading.current_thread() is not (
        threading.main_thread()
    ):
        return  # not a model process of its own (e.g. run in a thread by a test)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_main(conn: Connection, cancel: Event, config: dict[str, Any], flags: Any = None) -> None:
    _exit_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sticker_maker.quiet import quiet_ml_libraries

    quiet_ml_libraries()  # as the serve/worker that spawned it was told (--verbose)
    from sticker_maker.worker.predictor import Predictor

    predictor = Predictor()
    prepare_error = _prepare(predictor, config)
    try:
        _setup_safety(predictor, config)
        predictor.setup(
            config.get("presets_file"), config.get("cache_size", 2), config.get("engine_options")
        )
    except Exception as exc:  # setup errors are reported per job, not fatal here
        setup_error: str | None = f"worker setup failed: {exc}"
    else:
        setup_error = None
    if config.get("report_device"):
        engine = predictor.engine
        conn.send(("ready", engine.placement.device.type if engine is not None else "none"))
    else:
        conn.send(("ready",))
    later: deque[tuple[Any, ...]] = deque()  # read during a batch, handled after it
    while True:
        try:
            message = later.popleft() if later else conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        if message[0] in ("batch", "join"):  # a join after its batch ended starts one
            taken = _run_batch(
                conn, predictor, cancel, flags, message, setup_error, prepare_error, later
            )
            conn.send(("batch_end", taken))
            continue
        _, _job_id, kind, input_json, upload, *level = message
        _run_one(
            conn.send,
            predictor,
            kind,
            input_json,
            upload,
            cancel.is_set,
            setup_error,
            prepare_error,
            level[0] if level else None,
        )


def _run_one(
    send: Callable[[tuple[Any, ...]], None],
    predictor: Predictor,
    kind: str,
    input_json: str,
    upload: bytes | None,
    should_cancel: Callable[[], bool],
    setup_error: str | None,
    prepare_error: str | None,
    safety: str | None = None,
) -> None:
    """One job, its messages through ``send``."""
    started = time.perf_counter()
    loading_before = predictor.engine.load_seconds if predictor.engine else 0.0

    def predict_time(started: float = started, before: float = loading_before) -> float:
        """Seconds of model work for this job, without time spent loading weights."""
        loading = (predictor.engine.load_seconds if predictor.engine else 0.0) - before
        return max(0.0, time.perf_counter() - started - loading)

    unready = setup_error if kind in GENERATION_KINDS else prepare_error
    if unready:  # a missing engine (no torch, say) fails generation, not upload jobs
        send(("error", unready, 0.0))
        return
    try:
        stickers = predictor.run(
            kind,
            input_json,
            upload,
            on_progress=lambda step, total: send(("progress", step, total)),
            should_cancel=should_cancel,
            log=lambda line: send(("log", line)),
            safety=safety,
        )
        send(("done", stickers, predict_time()))
    except JobCanceled:
        send(("canceled", predict_time()))
    except StickerMakerError as exc:
        send(_error(exc, predict_time()))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        send(("error", f"{type(exc).__name__}: {exc}", predict_time()))


def _run_batch(
    conn: Connection,
    predictor: Predictor,
    cancel: Event,
    flags: Any,
    message: tuple[Any, ...],
    setup_error: str | None,
    prepare_error: str | None,
    later: deque[tuple[Any, ...]],
) -> int:
    """The jobs of a ``batch`` (or a late ``join``) message, and of every ``join`` that
    arrives while they denoise. Returns the sequence number of the last message taken.

    Upload jobs run one by one first; generation jobs go to
    :meth:`Predictor.predict_stream`, which asks for joiners between steps. Messages
    that are not joins (``stop``) wait in ``later`` until the batch is over.
    """
    from sticker_maker.params import JobInput
    from sticker_maker.worker.predictor import Task

    taken = message[1]

    sending = threading.Lock()  # results come from the finishing thread, progress not

    def tagged(job_id: str) -> Callable[[tuple[Any, ...]], None]:
        def send(m: tuple[Any, ...]) -> None:
            with sending:
                conn.send(("job", job_id, m))

        return send

    def cancelled(slot: int) -> Callable[[], bool]:
        return lambda: cancel.is_set() or bool(flags is not None and flags[slot])

    unfinished: dict[str, Callable[[tuple[Any, ...]], None]] = {}

    def on_result(job_id: str, send: Callable[[tuple[Any, ...]], None]) -> Callable[..., None]:
        unfinished[job_id] = send

        def report(result: Any, seconds: float, share: float) -> None:
            unfinished.pop(job_id, None)
            if isinstance(result, JobCanceled):
                send(("canceled", seconds))
            elif isinstance(result, StickerMakerError):
                send(_error(result, seconds, share))
            elif isinstance(result, Exception):
                traceback.print_exception(result, file=sys.stderr)
                send(("error", f"{type(result).__name__}: {result}", seconds))
            else:
                send(("done", result, seconds, share))

        return report

    def split(items: list[tuple[Any, ...]]) -> list[Task]:
        """Run what cannot share a call now; return the generation jobs as tasks."""
        tasks = []
        for slot, job_id, kind, input_json, upload, *level in items:
            send = tagged(job_id)
            if kind not in GENERATION_KINDS or setup_error is not None:
                _run_one(
                    send,
                    predictor,
                    kind,
                    input_json,
                    upload,
                    cancelled(slot),
                    setup_error,
                    prepare_error,
                    level[0] if level else None,
                )
                continue
            tasks.append(
                Task(
                    JobInput.model_validate_json(input_json),
                    on_result(job_id, send),
                    lambda step, total, send=send: send(("progress", step, total)),
                    cancelled(slot),
                    lambda line, send=send: send(("log", line)),
                    level[0] if level else None,
                    job_id=job_id,
                    on_preview=lambda jpeg, send=send: send(("preview", jpeg)),
                    picture=upload,
                )
            )
        return tasks

    def joiners() -> list[Task]:
        nonlocal taken
        tasks: list[Task] = []
        while not later and conn.poll(0):
            incoming = conn.recv()
            if incoming[0] != "join":
                later.append(incoming)
                break
            taken = incoming[1]
            tasks += split(incoming[2])
        return tasks

    tasks = split(message[2])
    if tasks:
        try:
            predictor.predict_stream(tasks, joiners)
        except Exception as exc:  # the shared part failed: every job still in it fails
            traceback.print_exc(file=sys.stderr)
            for send in list(unfinished.values()):
                send(("error", f"{type(exc).__name__}: {exc}", 0.0))
    return taken
