"""The model process. The parent sends jobs over a pipe; this process owns torch and the weights.

A crash or a stuck model here cannot take the API down: the parent sees the
pipe close (or kills this process) and fails the job.

Messages, child → parent::

    ("ready",)                         setup() finished
    ("progress", step, total)
    ("log", line)
    ("done", [sticker dicts], predict_time)
    ("canceled", predict_time)
    ("error", message, predict_time)
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from sticker_maker.errors import JobCanceled, StickerMakerError
from sticker_maker.params import JobInput


def child_main(conn: Connection, cancel: Event, config: dict[str, Any]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sticker_maker.worker.predictor import Predictor

    predictor = Predictor()
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
        _, _job_id, input_json = message
        started = time.perf_counter()
        loading_before = predictor.engine.load_seconds if predictor.engine else 0.0

        def predict_time(started: float = started, before: float = loading_before) -> float:
            """Seconds of model work for this job, without time spent loading weights."""
            loading = (predictor.engine.load_seconds if predictor.engine else 0.0) - before
            return max(0.0, time.perf_counter() - started - loading)

        if setup_error:
            conn.send(("error", setup_error, 0.0))
            continue
        try:
            job = JobInput.model_validate_json(input_json)
            stickers = predictor.predict(
                job,
                on_progress=lambda step, total: conn.send(("progress", step, total)),
                should_cancel=cancel.is_set,
                log=lambda line: conn.send(("log", line)),
            )
            conn.send(("done", [asdict(s) for s in stickers], predict_time()))
        except JobCanceled:
            conn.send(("canceled", predict_time()))
        except StickerMakerError as exc:
            conn.send(("error", exc.message, predict_time()))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            conn.send(("error", f"{type(exc).__name__}: {exc}", predict_time()))
