"""The worker loop: claim a job, hand it to the model process, record what comes back.

Runs as a thread inside ``sticker-maker serve`` (the embedded default) or in
the foreground of ``sticker-maker worker``. The model itself runs in a child
process (:mod:`sticker_maker.worker.child`), so a crashed or stuck model never
takes this process down: the job fails with a clear error and a fresh child is
started for the next one.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import socket
import threading
import time
import uuid
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sticker_maker.jobs import Job, JobStore, OutputFile
from sticker_maker.storage import Storage, new_file_name
from sticker_maker.worker.child import child_main, job_message

if TYPE_CHECKING:
    from sticker_maker.worker.predictor import Sticker

log = logging.getLogger("sticker_maker.worker")


class _Child:
    """One model process and the pipe to it."""

    def __init__(self, config: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.cancel = ctx.Event()
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=child_main,
            args=(child_conn, self.cancel, config),
            daemon=True,
            name="sticker-maker-model",
        )
        self.proc.start()
        child_conn.close()
        self.ready = False

    def wait_ready(self, stop: threading.Event) -> bool:
        while not self.ready and not stop.is_set():
            if self.conn.poll(0.2):
                try:
                    self.ready = self.conn.recv() == ("ready",)
                except EOFError:
                    return False
            elif not self.proc.is_alive():
                return False
        return self.ready

    def close(self, timeout: float = 5.0) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send(("stop",))
            self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)
        self.conn.close()


class Worker:
    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        *,
        presets_file: str | None = None,
        cache_size: int = 2,
        engine_options: dict[str, Any] | None = None,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 10.0,
        progress_interval: float = 0.1,
        job_timeout: float = 1800.0,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.config = {
            "presets_file": presets_file,
            "cache_size": cache_size,
            "engine_options": engine_options,
        }
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.progress_interval = progress_interval
        self.job_timeout = job_timeout
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None
        #: the running job's id and the last step its model process reported
        self._current: str | None = None
        self._latest_step = self._latest_total = 0
        self._signalled_at: int | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a daemon thread (``serve``'s in-process worker)."""
        self._thread = threading.Thread(target=self.run, name="sticker-maker-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Stop ``job_id`` at its next step if this worker is running it (else nothing).

        The API calls this in-process right after flagging the job in the database, so
        the model process sees the cancel within one step instead of at the next poll.
        """
        child = self._child
        if child is not None and self._current == job_id:
            self._signal_cancel(child)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._child is not None:
            self._child.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._child is not None:
            self._child.close()
            self._child = None

    def run(self) -> None:
        """Claim and run jobs until :meth:`stop`."""
        log.info("worker %s starting", self.worker_id)
        while not self._stop.is_set():
            child = self._ready_child()
            if child is None:
                continue
            try:
                job = self.store.claim_next(self.worker_id)
            except Exception:
                log.exception("claiming a job failed; retrying")
                self._stop.wait(self.poll_interval)
                continue
            if job is None:
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            try:
                self._run(child, job)
            except Exception as exc:  # never let one job kill the loop
                log.exception("job %s failed in the worker", job.id)
                self.store.fail(job, f"internal worker error: {type(exc).__name__}: {exc}")

    def _ready_child(self) -> _Child | None:
        if self._child is None or not self._child.proc.is_alive():
            if self._child is not None:
                self._child.close()
            self._child = _Child(self.config)
        if not self._child.wait_ready(self._stop):
            if not self._stop.is_set():
                log.error("model process exited during start-up; restarting")
                self._child.close()
                self._child = None
                self._stop.wait(1.0)
            return None
        return self._child

    # -- one job ----------------------------------------------------------------

    def _run(self, child: _Child, job: Job) -> None:
        child.cancel.clear()
        self._latest_step, self._latest_total = 0, job.progress_total
        self._signalled_at = None
        self._current = job.id
        try:
            self._exchange(child, job)
        finally:
            self._current = None

    def _signal_cancel(self, child: _Child) -> None:
        if self._signalled_at is None:
            self._signalled_at = self._latest_step
        child.cancel.set()

    def _exchange(self, child: _Child, job: Job) -> None:
        child.conn.send(job_message(job, self.storage))
        started = last_beat = last_progress = last_cancel_check = time.monotonic()
        pending_progress: tuple[int, int] | None = None
        conn: Connection = child.conn
        while True:
            now = time.monotonic()
            if conn.poll(0.05):
                try:
                    message = conn.recv()
                except EOFError:
                    self._crashed(child, job)
                    return
                kind = message[0]
                if kind == "progress":
                    pending_progress = (message[1], message[2])
                    self._latest_step, self._latest_total = message[1], message[2]
                    final = message[1] >= message[2]
                    if final or now - last_progress >= self.progress_interval:
                        if not self.store.record_progress(job, *pending_progress):
                            child.cancel.set()  # the job was taken from us (lease lost)
                        pending_progress, last_progress, last_beat = None, now, now
                elif kind == "log":
                    self.store.append_log(job, message[1])
                elif kind == "done":
                    self._finish(job, message[1], message[2])
                    return
                elif kind == "canceled":
                    self._canceled(job, message[1])
                    return
                elif kind == "error":
                    self.store.fail(job, message[1], message[2] or None)
                    return
                continue
            if not child.proc.is_alive():
                self._crashed(child, job)
                return
            if now - last_cancel_check >= 0.25:
                last_cancel_check = now
                if self.store.cancel_requested(job) or self._stop.is_set():
                    self._signal_cancel(child)
            if now - last_beat >= self.heartbeat_interval:
                step, total = pending_progress or (job.progress_step, job.progress_total)
                if not self.store.record_progress(job, step, total):
                    child.cancel.set()
                last_beat = now
            if now - started > self.job_timeout:
                child.proc.kill()
                child.proc.join(5)
                self._child = None
                self.store.fail(
                    job, f"the job ran longer than {self.job_timeout:.0f}s and was stopped"
                )
                return

    def _canceled(self, job: Job, predict_time: float) -> None:
        """Record where the job stopped, then mark it canceled."""
        step, total = self._latest_step, self._latest_total
        self.store.record_progress(job, step, total)
        if self._signalled_at is not None:
            self.store.append_log(
                job,
                f"canceled at step {step}/{total} "
                f"(the cancel reached the model process at step {self._signalled_at})",
            )
        self.store.mark_canceled(job, predict_time)

    def _crashed(self, child: _Child, job: Job) -> None:
        child.proc.join(5)
        code = child.proc.exitcode
        self._child = None
        self.store.fail(
            job,
            f"the model process exited unexpectedly (exit code {code}) while running this job; "
            "it has been restarted. If this repeats, the model may not fit in memory.",
        )

    def _finish(self, job: Job, stickers: list[Sticker], predict_time: float) -> None:
        outputs: list[OutputFile] = []
        for index, sticker in enumerate(stickers):
            for kind, data, width, height in sticker.files():
                name = new_file_name("png")
                self.storage.put(name, data)
                outputs.append(
                    OutputFile(
                        file=name,
                        kind=kind,
                        index=index,
                        seed=sticker.seed,
                        width=width,
                        height=height,
                    )
                )
        if not self.store.complete(job, outputs, predict_time):
            # Fenced out: another attempt owns this job now. Leave no orphan files.
            for output in outputs:
                self.storage.delete(output.file)
