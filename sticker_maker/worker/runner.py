"""The worker loop: claim a job, hand it to the model process, record what comes back.

Runs as a thread inside ``sticker-maker serve`` (the embedded default) or in
the foreground of ``sticker-maker worker``. The model itself runs in a child
process (:mod:`sticker_maker.worker.child`), so a crashed or stuck model never
takes this process down: the job fails with a clear error and a fresh child is
started for the next one.

Idle workers sleep until woken: in-process by ``wake()`` (a submit in the same
``serve``), across machines by PostgreSQL NOTIFY (a listener thread on its own
connection), and otherwise every ``poll_interval``. While a job runs the worker
refreshes its lease (``heartbeat_at``) every ``heartbeat_interval``; a worker
that dies stops refreshing and a reaper re-queues the job. Stopping is
graceful: no new claims, the running job may finish within ``drain_timeout``,
else it is handed back to the queue.
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

from sticker_maker.db.database import JOBS_CHANNEL
from sticker_maker.db.listener import Listener
from sticker_maker.jobs import Job, JobStore, OutputFile
from sticker_maker.jobs.workers import WorkerRegistry
from sticker_maker.metrics import (
    GPU_SECONDS,
    HANDED_BACK,
    HEARTBEATS,
    JOBS_FINISHED,
    PREDICT_TIME,
    QUEUE_WAIT,
)
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
        drain_timeout: float = 0.0,
        listen: bool = True,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.registry = WorkerRegistry(store.db)
        self.config = {
            "presets_file": presets_file,
            "cache_size": cache_size,
            "engine_options": engine_options,
        }
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.progress_interval = progress_interval
        self.job_timeout = job_timeout
        #: seconds a stopping worker lets its running job finish before handing it back
        self.drain_timeout = drain_timeout
        self.listen = listen and store.db.is_postgres
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.jobs_done = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self._child: _Child | None = None
        #: the running job's id and the last step its model process reported
        self._current: str | None = None
        self._latest_step = self._latest_total = 0
        self._signalled_at: int | None = None
        self._last_beat = 0.0
        self._last_state = ""

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

    def request_stop(self, drain_timeout: float | None = None) -> None:
        """Claim nothing more; the running job gets ``drain_timeout`` s, then is handed back."""
        drain = self.drain_timeout if drain_timeout is None else drain_timeout
        self._drain_deadline = min(self._drain_deadline, time.monotonic() + drain)
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop now: a running job is handed back to the queue (``serve``'s shutdown)."""
        self.request_stop(0.0)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._child is not None:
            self._child.close()
            self._child = None

    def run(self) -> None:
        """Claim and run jobs until :meth:`request_stop` (or :meth:`stop`)."""
        log.info("worker %s starting (%s)", self.worker_id, self.store.db.backend)
        with contextlib.suppress(Exception):
            self.registry.register(self.worker_id)
        if self.listen:
            # NOTIFY wakes this worker; after a (re)connect it looks at the queue at once
            self._listener = Listener(
                self.store.db, JOBS_CHANNEL, lambda _: self._wake.set(), on_connect=self._wake.set
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
            self._wake.clear()  # before the claim: a wake-up after it is not lost
            try:
                job = self.store.claim_next(self.worker_id)
            except Exception:
                log.exception("claiming a job failed; retrying")
                self._stop.wait(self.poll_interval)
                continue
            if job is None:
                self._idle(self._idle_wait())
                continue
            QUEUE_WAIT.observe(max(0.0, (job.started_at or job.created_at) - job.created_at))
            try:
                self._run(child, job)
            except Exception as exc:  # never let one job kill the loop
                log.exception("job %s failed in the worker", job.id)
                self._end(job, "failed", f"internal worker error: {type(exc).__name__}: {exc}")
            finally:
                self.jobs_done += 1

    def _idle(self, timeout: float) -> None:
        """Sleep until woken or ``timeout``, beating the registry meanwhile."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, self.heartbeat_interval)):
                return
            self._maybe_beat("idle")

    def _idle_wait(self) -> float:
        # NOTIFY wakes a listening worker at once; the timeout is only a safety net then.
        listening = self._listener is not None and self._listener.listening.is_set()
        return self.poll_interval * 5 if listening else self.poll_interval

    def _maybe_beat(self, state: str) -> None:
        """Refresh this worker's registry row every heartbeat interval."""
        now = time.monotonic()
        since = now - self._last_beat
        # a change of state is written soon (but at most twice a second: jobs can be short)
        due = self.heartbeat_interval if state == self._last_state else 0.5
        if since < due:
            return
        self._last_beat, self._last_state = now, state
        job_id = self._current
        try:
            self.registry.beat(self.worker_id, state, job_id, self.jobs_done)
            HEARTBEATS.inc()
        except Exception as exc:
            log.warning("worker heartbeat failed: %s", exc)

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

    def _lease(self, job: Job, step: int, total: int) -> bool:
        """Progress + lease heartbeat. False if the job was taken from us."""
        try:
            owned = self.store.record_progress(job, step, total)
        except Exception as exc:  # database away: keep working, the fence decides later
            log.warning("heartbeat for job %s failed: %s", job.id, exc)
            return True
        HEARTBEATS.inc()
        return owned

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
        #: log lines wait here and go out together (one write, not one per line)
        lines: list[str] = []
        last_log = started
        canceled_by_user = lease_lost = False
        handing_back_since: float | None = None
        conn: Connection = child.conn
        while True:
            now = time.monotonic()
            if conn.poll(0.05):
                try:
                    message = conn.recv()
                except EOFError:
                    self._flush_logs(job, lines)
                    self._crashed(child, job, handing_back_since is not None)
                    return
                kind = message[0]
                if kind in ("done", "canceled", "error"):
                    self._flush_logs(job, lines)
                if kind == "progress":
                    pending_progress = (message[1], message[2])
                    self._latest_step, self._latest_total = message[1], message[2]
                    final = message[1] >= message[2]
                    if final or now - last_progress >= self.progress_interval:
                        if not self._lease(job, *pending_progress):
                            lease_lost = True
                            child.cancel.set()  # the job was taken from us (lease lost)
                        pending_progress, last_progress, last_beat = None, now, now
                elif kind == "log":
                    lines.append(message[1])
                elif kind == "done":
                    self._finish(job, message[1], message[2])
                    return
                elif kind == "canceled":
                    if (
                        handing_back_since is not None
                        and not lease_lost
                        and not canceled_by_user
                        and not self._cancel_asked(job)
                    ):
                        self._hand_back(job)
                    else:
                        self._canceled(job, message[1])
                    return
                elif kind == "error":
                    self._end(job, "failed", message[1], message[2] or None)
                    return
            elif not child.proc.is_alive():
                self._flush_logs(job, lines)
                self._crashed(child, job, handing_back_since is not None)
                return
            # periodic checks run whether or not a message came (progress can be continuous)
            if lines and now - last_log >= 0.5:
                self._flush_logs(job, lines)
                last_log = now
            if now - last_cancel_check >= 0.25:
                last_cancel_check = now
                if self._cancel_asked(job):
                    canceled_by_user = True
                    self._signal_cancel(child)
            if handing_back_since is None and self._stop.is_set() and now >= self._drain_deadline:
                handing_back_since = now
                child.cancel.set()
            if handing_back_since is not None and now - handing_back_since > 10.0:
                child.proc.kill()  # it does not answer the cancel: hand back without it
                child.proc.join(5)
                self._child = None
                self._hand_back(job)
                return
            if now - last_beat >= self.heartbeat_interval:
                step, total = pending_progress or (job.progress_step, job.progress_total)
                if not self._lease(job, step, total):
                    lease_lost = True
                    child.cancel.set()
                last_beat = now
            self._maybe_beat("draining" if self._stop.is_set() else "busy")
            if now - started > self.job_timeout:
                child.proc.kill()
                child.proc.join(5)
                self._child = None
                self._end(
                    job,
                    "failed",
                    f"the job ran longer than {self.job_timeout:.0f}s and was stopped",
                )
                return

    def _cancel_asked(self, job: Job) -> bool:
        try:
            return self.store.cancel_requested(job)
        except Exception:  # database away: keep going, ask again at the next check
            return False

    def _canceled(self, job: Job, predict_time: float) -> None:
        """Record where the job stopped, then mark it canceled."""
        step, total = self._latest_step, self._latest_total
        with contextlib.suppress(Exception):
            self.store.record_progress(job, step, total)
            if self._signalled_at is not None:
                self.store.append_log(
                    job,
                    f"canceled at step {step}/{total} "
                    f"(the cancel reached the model process at step {self._signalled_at})",
                )
        self._end(job, "canceled", None, predict_time)

    def _flush_logs(self, job: Job, lines: list[str]) -> None:
        if lines:
            with contextlib.suppress(Exception):  # logs are best effort
                self.store.append_log(job, "\n".join(lines))
            lines.clear()

    def _hand_back(self, job: Job) -> None:
        if self.store.release(job):
            HANDED_BACK.inc()
            log.info("job %s handed back to the queue", job.id)

    def _end(
        self, job: Job, status: str, error: str | None, predict_time: float | None = None
    ) -> None:
        """Record a job's end (fenced); count it if this attempt still owned the job."""
        try:
            if status == "canceled":
                owned = self.store.mark_canceled(job, predict_time)
            else:
                owned = self.store.fail(job, error or "failed", predict_time)
        except Exception:
            log.exception("could not record the end of job %s; its lease will expire", job.id)
            return
        if owned:
            JOBS_FINISHED.labels(status).inc()
            if predict_time:
                PREDICT_TIME.observe(predict_time)

    def _crashed(self, child: _Child, job: Job, handing_back: bool) -> None:
        child.proc.join(5)
        code = child.proc.exitcode
        self._child = None
        if handing_back:
            self._hand_back(job)
            return
        self._end(
            job,
            "failed",
            f"the model process exited unexpectedly (exit code {code}) while running this job; "
            "it has been restarted. If this repeats, the model may not fit in memory.",
        )

    def _finish(self, job: Job, stickers: list[Sticker], predict_time: float) -> None:
        outputs: list[OutputFile] = []
        try:
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
            owned = self.store.complete(job, outputs, predict_time)
        except BaseException:
            self._delete(outputs)
            raise
        if owned:
            JOBS_FINISHED.labels("succeeded").inc()
            PREDICT_TIME.observe(predict_time)
            GPU_SECONDS.inc(predict_time)
        else:
            # Fenced out: another attempt owns this job now. Leave no orphan files.
            self._delete(outputs)

    def _delete(self, outputs: list[OutputFile]) -> None:
        for output in outputs:
            with contextlib.suppress(Exception):
                self.storage.delete(output.file)
