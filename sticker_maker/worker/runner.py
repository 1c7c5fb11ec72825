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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sticker_maker.jobs import Job, JobStore, OutputFile
from sticker_maker.storage import Storage, new_file_name
from sticker_maker.worker.child import child_main, job_message

if TYPE_CHECKING:
    from sticker_maker.worker.predictor import Sticker

log = logging.getLogger("sticker_maker.worker")


#: the most jobs one model call may take (the size of the per-job cancel flags)
MAX_BATCH = 64


class _Child:
    """One model process and the pipe to it."""

    def __init__(self, config: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.cancel = ctx.Event()
        #: job n of the running batch is cancelled by flags[n] = 1
        self.flags = ctx.RawArray("b", MAX_BATCH)
        #: the model's device type, reported when it is ready ("cuda", "cpu", ...)
        self.device = "cpu"
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=child_main,
            args=(child_conn, self.cancel, {**config, "report_device": True}, self.flags),
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
                    message = self.conn.recv()
                except EOFError:
                    return False
                self.ready = message[0] == "ready"
                if len(message) > 1:
                    self.device = message[1]
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


@dataclass
class _Running:
    """One job of the batch on the model process, as the loop tracks it."""

    job: Job
    slot: int
    step: int = 0
    total: int = 0
    pending: tuple[int, int] | None = None
    signalled_at: int | None = None
    #: log lines not written yet (they go with the next progress write or the end)
    lines: list[str] = field(default_factory=list)

    def take_lines(self) -> str:
        text = "".join(line + "\n" for line in self.lines)
        self.lines = []
        return text


class Worker:
    """Claims jobs and runs them on its model process, several per call when they fit.

    ``max_batch``: jobs one pipeline call may take (``serve --max-batch``); ``None``
    picks 4 when the model runs on a GPU, where a batch raises the throughput at a
    small cost in latency, and 1 elsewhere: on a CPU a real SDXL step is compute-bound,
    so a batch of N takes about N times as long and only delays the first job.
    ``batch_wait``: after a wake-up, how long the queue must stay quiet (no new submit)
    before claiming, so jobs submitted together are claimed together; at most 10x that.
    """

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
        max_batch: int | None = None,
        batch_wait: float = 0.005,
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
        self.max_batch = None if max_batch is None else max(1, min(MAX_BATCH, max_batch))
        self.batch_wait = batch_wait
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None
        #: the running batch: job id → its state
        self._running: dict[str, _Running] = {}

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
        Only that job stops; the others of its batch go on.
        """
        child = self._child
        running = self._running.get(job_id)
        if child is not None and running is not None:
            self._signal_cancel(child, running)

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

    def batch_limit(self, child: _Child) -> int:
        """Jobs per model call: ``max_batch``, else 4 on a GPU and 1 elsewhere."""
        if self.max_batch is not None:
            return self.max_batch
        return 4 if child.device == "cuda" else 1

    def run(self) -> None:
        """Claim and run jobs until :meth:`stop`."""
        log.info("worker %s starting", self.worker_id)
        woken = False
        while not self._stop.is_set():
            child = self._ready_child()
            if child is None:
                continue
            limit = self.batch_limit(child)
            if woken and limit > 1:
                self._gather(limit)
            try:
                jobs = self.store.claim_batch(self.worker_id, limit)
            except Exception:
                log.exception("claiming a job failed; retrying")
                self._stop.wait(self.poll_interval)
                continue
            if not jobs:
                woken = self._wake.wait(self.poll_interval)
                self._wake.clear()
                continue
            woken = False
            try:
                self._run(child, jobs)
            except Exception as exc:  # never let one batch kill the loop
                log.exception("jobs %s failed in the worker", [j.id for j in jobs])
                for running in list(self._running.values()):
                    self.store.fail(
                        running.job, f"internal worker error: {type(exc).__name__}: {exc}"
                    )
            finally:
                self._running = {}

    def _gather(self, limit: int) -> None:
        """Wait until no submit arrived for ``batch_wait`` (at most 10x that, or ``limit``
        submits), so that jobs sent together share one call."""
        deadline = time.monotonic() + 10 * self.batch_wait
        seen = 1
        while seen < limit and self._wake.wait(
            max(0.0, min(self.batch_wait, deadline - time.monotonic()))
        ):
            self._wake.clear()
            seen += 1
            if time.monotonic() >= deadline:
                break

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

    # -- one batch --------------------------------------------------------------

    def _run(self, child: _Child, jobs: list[Job]) -> None:
        child.cancel.clear()
        items = []
        for job in jobs:
            try:
                _, job_id, kind, input_json, upload = job_message(job, self.storage)
            except Exception as exc:
                self.store.fail(job, str(exc))
                continue
            slot = len(items)
            child.flags[slot] = 0
            self._running[job.id] = _Running(job, slot, total=job.progress_total)
            items.append((job_id, kind, input_json, upload))
        if items:
            self._exchange(child, items)

    def _signal_cancel(self, child: _Child, running: _Running) -> None:
        if running.signalled_at is None:
            running.signalled_at = running.step
        child.flags[running.slot] = 1

    def _exchange(self, child: _Child, items: list[tuple[Any, ...]]) -> None:
        child.conn.send(("batch", items))
        started = last_beat = last_cancel_check = time.monotonic()
        last_flush = float("-inf")
        conn: Connection = child.conn
        while True:  # until the model process says the batch is over
            now = time.monotonic()
            if conn.poll(0.05):
                try:
                    message = conn.recv()
                except EOFError:
                    self._crashed(child)
                    return
                if message[0] == "batch_end":
                    break
                _, job_id, inner = message
                running = self._running.get(job_id)
                if running is not None:
                    self._handle(child, running, inner)
                caught_up = not conn.poll(0)  # then write what is due, for all jobs at once
                if caught_up and (
                    now - last_flush >= self.progress_interval or self._final_pending()
                ):
                    self._flush(child)
                    last_flush = last_beat = now
                continue
            if not child.proc.is_alive():
                self._crashed(child)
                return
            if now - last_cancel_check >= 0.25:
                last_cancel_check = now
                wanted = self.store.cancel_requested_among([r.job for r in self._running.values()])
                for running in list(self._running.values()):
                    if self._stop.is_set() or running.job.id in wanted:
                        self._signal_cancel(child, running)
            if now - last_beat >= self.heartbeat_interval or (
                now - last_flush >= self.progress_interval and self._anything_pending()
            ):
                self._flush(child, everyone=now - last_beat >= self.heartbeat_interval)
                last_flush = last_beat = now
            if now - started > self.job_timeout:
                child.proc.kill()
                child.proc.join(5)
                self._child = None
                for running in list(self._running.values()):
                    self.store.fail(
                        running.job,
                        f"the job ran longer than {self.job_timeout:.0f}s and was stopped",
                    )
                return
        for running in list(self._running.values()):  # ended without a word about them
            self.store.fail(running.job, "the model process did not finish this job")

    def _final_pending(self) -> bool:
        return any(r.pending and r.pending[0] >= r.pending[1] for r in self._running.values())

    def _anything_pending(self) -> bool:
        return any(r.pending or r.lines for r in self._running.values())

    def _flush(self, child: _Child, *, everyone: bool = False) -> None:
        """Write the batch's progress and log lines in one transaction (also a heartbeat
        with ``everyone``); a job no longer ours is stopped."""
        updates = []
        for running in self._running.values():
            if running.pending or running.lines or everyone:
                step, total = running.pending or (running.step, running.total)
                updates.append((running.job, step, total, running.take_lines()))
                running.pending = None
        if not updates:
            return
        for job_id in self.store.record_progress_many(updates):
            lost = self._running.get(job_id)
            if lost is not None:
                child.flags[lost.slot] = 1  # the job was taken from us (lease lost)

    def _handle(self, child: _Child, running: _Running, message: tuple[Any, ...]) -> None:
        """One message about one job of the batch (writes wait for :meth:`_flush`)."""
        job = running.job
        kind = message[0]
        if kind == "progress":
            running.pending = (message[1], message[2])
            running.step, running.total = message[1], message[2]
            return
        if kind == "log":
            running.lines.append(message[1])
            return
        del self._running[job.id]
        if kind == "done":
            billed = message[3] if len(message) > 3 else None
            progress = (running.step, running.total)
            self._finish(job, message[1], message[2], billed, running.take_lines(), progress)
        elif kind == "canceled":
            self._canceled(running, message[1])
        elif kind == "error":
            self.store.fail(job, message[1], message[2] or None, running.take_lines())

    def _canceled(self, running: _Running, predict_time: float) -> None:
        """Record where the job stopped, then mark it canceled."""
        job, step, total = running.job, running.step, running.total
        if running.signalled_at is not None:
            running.lines.append(
                f"canceled at step {step}/{total} "
                f"(the cancel reached the model process at step {running.signalled_at})"
            )
        self.store.record_progress_many([(job, step, total, running.take_lines())])
        self.store.mark_canceled(job, predict_time)

    def _crashed(self, child: _Child) -> None:
        child.proc.join(5)
        code = child.proc.exitcode
        self._child = None
        for running in list(self._running.values()):
            self.store.fail(
                running.job,
                f"the model process exited unexpectedly (exit code {code}) while running this "
                "job; it has been restarted. If this repeats, the model may not fit in memory.",
                None,
                running.take_lines(),
            )
        self._running = {}

    def _finish(
        self,
        job: Job,
        stickers: list[Sticker],
        predict_time: float,
        billed_time: float | None = None,
        logs: str = "",
        progress: tuple[int, int] | None = None,
    ) -> None:
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
        if not self.store.complete(job, outputs, predict_time, billed_time, logs, progress):
            # Fenced out: another attempt owns this job now. Leave no orphan files.
            for output in outputs:
                self.storage.delete(output.file)
