"""The worker loop: claim a job, hand it to the model process, record what comes back.

Runs as a thread inside ``sticker-maker serve`` (the embedded default) or in
the foreground of ``sticker-maker worker``. The model itself runs in a child
process (:mod:`sticker_maker.worker.child`), so a crashed or stuck model never
takes this process down: the job fails with a clear error and a fresh child is
started for the next one.

Idle workers sleep until woken: in-process by ``wake()`` (a submit in the same
``serve``), across machines by PostgreSQL NOTIFY (a listener thread on its own
connection), and otherwise every ``poll_interval``. While jobs run the worker
refreshes their leases (``heartbeat_at``) every ``heartbeat_interval``; a worker
that dies stops refreshing and a reaper re-queues its jobs. Stopping is graceful:
no new claims, the running batch may finish within ``drain_timeout``, else its
jobs are handed back to the queue.

While a batch runs, a wake-up (or the idle poll's timeout) claims queued jobs of its
batch key, up to ``max_batch`` in all, and sends them to join it: the model process
adds them at its next denoising step (continuous batching), so a job that misses a
batch waits one step, not the whole batch (:mod:`sticker_maker.worker.batch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from sticker_maker.db.database import JOBS_CHANNEL
from sticker_maker.db.listener import Listener
from sticker_maker.faults import unavailable
from sticker_maker.jobs import JobStore
from sticker_maker.jobs.workers import WorkerRegistry
from sticker_maker.metrics import HEARTBEATS, QUEUE_WAIT
from sticker_maker.storage import Storage
from sticker_maker.worker.batch import HAND_BACK_SECONDS, BatchRelay, Running
from sticker_maker.worker.process import MAX_BATCH, ModelProcess
from sticker_maker.worker.record import Recorder

__all__ = ["HAND_BACK_SECONDS", "Worker"]

log = logging.getLogger("sticker_maker.worker")


class Worker(BatchRelay):
    """Claims jobs and runs them on its model process, several per call when they fit.

    ``max_batch``: jobs denoised together (``serve --max-batch``); ``None``
    picks 4 when the model runs on a GPU, where a batch raises the throughput at a
    small cost in latency, and 1 elsewhere: on a CPU a real SDXL step is compute-bound,
    so a batch of N takes about N times as long and only delays the first job.
    A job that misses a batch is not held back for the next: it joins the running one
    at its next denoising step, so claims never wait to gather jobs.
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
        drain_timeout: float = 0.0,
        listen: bool = True,
        safety: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.recorder = Recorder(store, storage)
        self.config = {
            "presets_file": presets_file,
            "cache_size": cache_size,
            "engine_options": engine_options,
            # content safety (SafetySettings.to_dict); None: the model process reads the env
            "safety": safety,
        }
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.progress_interval = progress_interval
        self.job_timeout = job_timeout
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_batch = None if max_batch is None else max(1, min(MAX_BATCH, max_batch))
        #: seconds a stopping worker lets its running batch finish before handing it back
        self.drain_timeout = drain_timeout
        self.listen = listen and store.db.is_postgres
        self.registry = WorkerRegistry(store.db)
        self.jobs_done = 0
        self._drain_deadline = float("inf")
        self._handing_back = False
        self._listener: Listener | None = None
        self._last_beat = 0.0
        self._last_state = ""
        self._wake = threading.Event()
        # ... and a pipe that says the same, so the relay loop can wait on the model
        # process and on wake-ups at once (a joiner is claimed as soon as it is submitted)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: ModelProcess | None = None
        #: the running batch: job id → its state
        self._running: dict[str, Running] = {}
        #: the number of the last message that sent jobs to the model process (never
        #: reset: a late ``batch_end`` of an earlier batch then matches none of the jobs)
        self._seq = 0

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a daemon thread (``serve``'s in-process worker)."""
        self._thread = threading.Thread(target=self.run, name="sticker-maker-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

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

    def request_stop(self, drain_timeout: float | None = None) -> None:
        """Claim nothing more; the running batch gets ``drain_timeout`` s, then goes back."""
        drain = self.drain_timeout if drain_timeout is None else drain_timeout
        self._drain_deadline = min(self._drain_deadline, time.monotonic() + drain)
        self._stop.set()
        self.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop now: running jobs are handed back to the queue (``serve``'s shutdown)."""
        self.recorder.stopping.set()
        self.request_stop(0.0)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._child is not None:
            self._child.close()
            self._child = None

    def batch_limit(self, child: ModelProcess) -> int:
        """Jobs per model call: ``max_batch``, else 4 on a GPU and 1 elsewhere."""
        if self.max_batch is not None:
            return self.max_batch
        return 4 if child.device == "cuda" else 1

    def run(self) -> None:
        """Claim and run jobs until :meth:`request_stop` (or :meth:`stop`)."""
        log.info("worker %s starting (%s)", self.worker_id, self.store.db.backend)
        with contextlib.suppress(Exception):
            self.registry.register(self.worker_id)
        if self.listen:
            # NOTIFY wakes this worker; after a (re)connect it looks at the queue at once
            self._listener = Listener(
                self.store.db, JOBS_CHANNEL, lambda _: self.wake(), on_connect=self.wake
            )
            self._listener.start()
        try:
            self._loop()
        finally:
            if self._listener is not None:
                self._listener.stop()
            if self._child is not None:
                self._child.close()
                self._child = None
            with contextlib.suppress(Exception):
                self.registry.remove(self.worker_id)
            log.info("worker %s stopped after %d job(s)", self.worker_id, self.jobs_done)

    def _loop(self) -> None:
        while not self._stop.is_set():
            child = self._ready_child()
            if child is None:
                continue
            self._maybe_beat("idle")
            paused = self.recorder.pause_until - time.monotonic()
            if paused > 0:  # outputs could not be written just now: let space come back
                self._stop.wait(paused)
                continue
            limit = self.batch_limit(child)
            self._wake.clear()  # before the claim: a wake-up after it is not lost
            try:
                jobs = self.store.claim_batch(self.worker_id, limit)
            except Exception as exc:
                if unavailable(exc) is None:
                    log.exception("claiming a job failed; retrying")
                else:
                    log.warning("claiming a job failed (%s); retrying", exc)
                self._stop.wait(self.poll_interval)
                continue
            if not jobs:
                self._idle(self._idle_wait())
                continue
            for job in jobs:
                QUEUE_WAIT.observe(max(0.0, (job.started_at or job.created_at) - job.created_at))
            try:
                self._run(child, jobs)
            except Exception as exc:  # never let one batch kill the loop
                log.exception("jobs %s failed in the worker", [j.id for j in jobs])
                for running in list(self._running.values()):
                    self.recorder.end(
                        running.job, "failed", f"internal worker error: {type(exc).__name__}: {exc}"
                    )
            finally:
                self._forget_running()

    def _idle(self, timeout: float) -> None:
        """Sleep until woken or ``timeout``, beating the registry meanwhile."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._wake.wait(min(left, self.heartbeat_interval)):
                self._wake.clear()
                return
            self._maybe_beat("idle")

    def _idle_wait(self) -> float:
        # NOTIFY wakes a listening worker at once; the timeout is only a safety net then.
        listening = self._listener is not None and self._listener.listening.is_set()
        return self.poll_interval * 5 if listening else self.poll_interval

    def _maybe_beat(self, state: str) -> None:
        """Refresh this worker's registry row every heartbeat interval (sooner on a change)."""
        now = time.monotonic()
        # a change of state is written soon (but at most twice a second: jobs can be short)
        due = self.heartbeat_interval if state == self._last_state else 0.5
        if now - self._last_beat < due:
            return
        self._last_beat, self._last_state = now, state
        job_id = next(iter(self._running), None)
        try:
            self.registry.beat(self.worker_id, state, job_id, self.jobs_done)
            HEARTBEATS.inc()
        except Exception as exc:
            log.warning("worker heartbeat failed: %s", exc)

    def _ready_child(self) -> ModelProcess | None:
        if self._child is None or not self._child.proc.is_alive():
            if self._child is not None:
                self._child.close()
            self._child = ModelProcess(self.config)
        if not self._child.wait_ready(self._stop):
            if not self._stop.is_set():
                log.error("model process exited during start-up; restarting")
                self._child.close()
                self._child = None
                self._stop.wait(1.0)
            return None
        return self._child
