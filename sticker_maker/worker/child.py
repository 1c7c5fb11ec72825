"""The model process. The parent sends jobs over a pipe; this process owns torch and the weights.

A crash or a stuck model here cannot take the API down: the parent sees the
pipe close (or kills this process) and fails the job.

Messages, parent → child::

    ("predict", job_id, kind, input_json, upload)   upload: the uploaded file's bytes
                                                     (cutout, split) or None (generate)
    ("stop",)

Messages, child → parent::

    ("ready",)                         setup() finished
    ("progress", step, total)
    ("log", line)
    ("done", [Sticker], predict_time)
    ("canceled", predict_time)
    ("error", message, predict_time)
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING, Any

from sticker_maker.errors import JobCanceled, StickerMakerError

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
    return ("predict", job.id, job.kind, job.input.model_dump_json(), upload)


def _prepare(predictor: Predictor, config: dict[str, Any]) -> str | None:
    """Presets only: all that upload jobs need (no torch). An error string, or None."""
    try:
        predictor.prepare(config.get("presets_file"))
    except Exception as exc:
        return f"worker setup failed: {exc}"
    return None


def child_main(conn: Connection, cancel: Event, config: dict[str, Any]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sticker_maker.worker.predictor import Predictor

    predictor = Predictor()
    prepare_error = _prepare(predictor, config)
    try:
        predictor.setup(
            config.get("presets_file"), config.get("cache_size", 2), config.get("engine_options")
        )
    except Exception as exc:  # setup errors are reported per job, not fatal here
        setup_error: str | None = f"worker setup failed: {exc}"
    else:
        setup_error = None
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message[0] == "stop":
            return
        _, _job_id, kind, input_json, upload = message
        started = time.perf_counter()
        loading_before = predictor.engine.load_seconds if predictor.engine else 0.0

        def predict_time(started: float = started, before: float = loading_before) -> float:
            """Seconds of model work for this job, without time spent loading weights."""
            loading = (predictor.engine.load_seconds if predictor.engine else 0.0) - before
            return max(0.0, time.perf_counter() - started - loading)

        unready = setup_error if kind == "generate" else prepare_error
        if unready:  # a missing engine (no torch, say) fails generation, not upload jobs
            conn.send(("error", unready, 0.0))
            continue
        try:
            stickers = predictor.run(
                kind,
                input_json,
                upload,
                on_progress=lambda step, total: conn.send(("progress", step, total)),
                should_cancel=cancel.is_set,
                log=lambda line: conn.send(("log", line)),
            )
            conn.send(("done", stickers, predict_time()))
        except JobCanceled:
            conn.send(("canceled", predict_time()))
        except StickerMakerError as exc:
            conn.send(("error", exc.message, predict_time()))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            conn.send(("error", f"{type(exc).__name__}: {exc}", predict_time()))
