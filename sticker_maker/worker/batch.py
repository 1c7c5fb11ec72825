"""One batch on the model process: send its jobs, relay what comes back, let others join.

:class:`BatchRelay` is the part of :class:`~sticker_maker.worker.runner.Worker` that
runs while a batch is on the model process: it sends jobs (a ``batch``, then ``join``s
of queued jobs of the same batch key), relays the model process's messages (progress,
log lines, previews, each job's end) and writes them in one transaction per flush,
which is also the jobs' heartbeat. It stops jobs that were cancelled, timed out or
taken from this worker, and hands the batch back to the queue when a stopping worker's
drain deadline passes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from sticker_maker.jobs import Job, JobStore
from sticker_maker.metrics import HEARTBEATS, QUEUE_WAIT
from sticker_maker.params import JobInput, batch_key_text
from sticker_maker.storage import Storage, preview_name
from sticker_maker.worker.child import job_message
from sticker_maker.worker.process import MAX_BATCH, ModelProcess
from sticker_maker.worker.record import Recorder, job_line

#: after the drain deadline: seconds the model process has to stop at its next step,
#: then to die once killed; then the jobs go back to the queue
CANCEL_ANSWER_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
#: the longest a stopping worker runs past ``drain_timeout`` (cancel, kill, hand back,
#: exit): a pod's termination grace period must be at least drain timeout + this
HAND_BACK_SECONDS = CANCEL_ANSWER_SECONDS + KILL_WAIT_SECONDS + 5.0

log = logging.getLogger("sticker_maker.worker")


@dataclass
class Running:
    """One job of the batch on the model process, as the loop tracks it."""

    job: Job
    slot: int
    #: the number of the message that sent it to the model process
    seq: int = 0
    #: when it was sent (its own timeout counts from here)
    sent_at: float = 0.0
    step: int = 0
    total: int = 0
    pending: tuple[int, int] | None = None
    signalled_at: int | None = None
    #: log lines not written yet (they go with the next progress write or the end)
    lines: list[str] = field(default_factory=list)
    #: the user asked to cancel it / another attempt owns it now (never hand it back then)
    user_canceled: bool = False
    lease_lost: bool = False
    #: the latest live preview not written yet; whether one was written (to delete)
    preview: bytes | None = None
    previewed: bool = False

    def take_lines(self) -> str:
        text = "".join(line + "\n" for line in self.lines)
        self.lines = []
        return text


class BatchRelay:
    """The running batch (mixed into :class:`~sticker_maker.worker.runner.Worker`)."""

    store: JobStore
    storage: Storage
    recorder: Recorder
    worker_id: str
    jobs_done: int
    job_timeout: float
    progress_interval: float
    heartbeat_interval: float
    _stop: threading.Event
    _wake: threading.Event
    _wake_r: int
    _drain_deadline: float
    _handing_back: bool
    _child: ModelProcess | None
    #: the running batch: job id → its state
    _running: dict[str, Running]
    #: the number of the last message that sent jobs to the model process (never
    #: reset: a late ``batch_end`` of an earlier batch then matches none of the jobs)
    _seq: int

    def batch_limit(self, child: ModelProcess) -> int:
        raise NotImplementedError

    def _idle_wait(self) -> float:
        raise NotImplementedError

    def _maybe_beat(self, state: str) -> None:
        raise NotImplementedError

    def _forget_running(self) -> None:
        """No job runs here any more (the batch ended, or the model process went)."""
        for running in self._running.values():
            self._drop_preview(running)
        self._running = {}

    def _run(self, child: ModelProcess, jobs: list[Job]) -> None:
        child.cancel.clear()
        self._handing_back = False
        if self._send(child, "batch", jobs):
            self._exchange(child)

    def _send(self, child: ModelProcess, kind: str, jobs: list[Job]) -> bool:
        """Send jobs to the model process as a ``batch`` or a ``join``, each in a free
        cancel slot. False if none could be sent (their input files are gone, say)."""
        items = []
        used = {r.slot for r in self._running.values()}
        free = (n for n in range(MAX_BATCH) if n not in used)
        self._seq += 1
        now = time.monotonic()
        for job in jobs:
            try:
                _, job_id, kind_, input_json, upload, safety = job_message(job, self.storage)
            except Exception as exc:
                self.store.fail(job, str(exc))
                continue
            slot = next(free)
            child.flags[slot] = 0
            self._running[job.id] = Running(
                job, slot, seq=self._seq, sent_at=now, total=job.progress_total
            )
            items.append((slot, job_id, kind_, input_json, upload, safety))
            job_line(job, "started" if kind == "batch" else "started (joined a batch)")
        if items:
            child.conn.send((kind, self._seq, items))
            self.jobs_done += len(items)
        return bool(items)

    def _joinable_key(self, limit: int) -> str | None:
        """The batch key queued jobs may join the running batch with, or None: only
        generation jobs without upscale (those refine one by one after denoising), while
        there is room, and never while stopping."""
        if self._stop.is_set() or self._handing_back or len(self._running) >= limit:
            return None
        keys = set()
        for running in self._running.values():
            job_input = running.job.input
            if not isinstance(job_input, JobInput) or job_input.upscale:
                return None
            keys.add(batch_key_text(job_input))
        return keys.pop() if len(keys) == 1 else None

    def _take_joiners(self, child: ModelProcess) -> None:
        """Claim queued jobs of the running batch's key and send them to join it."""
        limit = self.batch_limit(child)
        key = self._joinable_key(limit)
        if key is None:
            return
        try:
            jobs = self.store.claim_joiners(self.worker_id, key, limit - len(self._running))
        except Exception as exc:  # database away: the next wake-up tries again
            log.warning("claiming jobs to join the running batch failed: %s", exc)
            return
        for job in jobs:
            QUEUE_WAIT.observe(max(0.0, (job.started_at or job.created_at) - job.created_at))
        if jobs:
            self._send(child, "join", jobs)

    def _signal_cancel(self, child: ModelProcess, running: Running) -> None:
        if running.signalled_at is None:
            running.signalled_at = running.step
        child.flags[running.slot] = 1

    def _exchange(self, child: ModelProcess) -> None:
        """Relay the running jobs' messages until none is left; queued jobs of the same
        batch key join meanwhile (on a wake-up, else as often as an idle worker looks)."""
        last_beat = last_cancel_check = last_join = time.monotonic()
        last_flush = float("-inf")
        handing_back_since = 0.0
        conn: Connection = child.conn
        while self._running:
            now = time.monotonic()
            if self._wake.is_set() or now - last_join >= self._idle_wait():
                self._wake.clear()
                last_join = now
                self._take_joiners(child)
            if self._wait(conn):
                try:
                    message = conn.recv()
                except EOFError:
                    self._crashed(child)
                    return
                if message[0] == "batch_end":  # jobs it took in and never reported
                    for running in list(self._running.values()):
                        if running.seq <= message[1]:
                            del self._running[running.job.id]
                            self._drop_preview(running)
                            self.store.fail(
                                running.job, "the model process did not finish this job"
                            )
                    continue
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
            elif not child.proc.is_alive():
                self._crashed(child)
                return
            # the checks below run whether or not a message came (progress can stream)
            if now - last_cancel_check >= 0.25:
                last_cancel_check = now
                with contextlib.suppress(Exception):  # database away: ask again next time
                    wanted = self.store.cancel_requested_among(
                        [r.job for r in self._running.values()]
                    )
                    for running in list(self._running.values()):
                        if running.job.id in wanted:
                            running.user_canceled = True
                            self._signal_cancel(child, running)
            if not self._handing_back and self._stop.is_set() and now >= self._drain_deadline:
                self._handing_back, handing_back_since = True, now
                for running in list(self._running.values()):
                    self._signal_cancel(child, running)
            if self._handing_back and now - handing_back_since > CANCEL_ANSWER_SECONDS:
                child.proc.kill()  # it does not answer the cancel: hand back without it
                child.proc.join(KILL_WAIT_SECONDS)
                self._child = None
                for running in list(self._running.values()):
                    self.recorder.hand_back(running.job)
                self._forget_running()
                return
            if now - last_beat >= self.heartbeat_interval or (
                now - last_flush >= self.progress_interval and self._anything_pending()
            ):
                self._flush(child, everyone=now - last_beat >= self.heartbeat_interval)
                last_flush = last_beat = now
            self._maybe_beat("draining" if self._stop.is_set() else "busy")
            if any(now - r.sent_at > self.job_timeout for r in self._running.values()):
                child.proc.kill()
                child.proc.join(5)
                self._child = None
                for running in list(self._running.values()):
                    self.store.fail(
                        running.job,
                        f"the job ran longer than {self.job_timeout:.0f}s and was stopped",
                    )
                return

    def _wait(self, conn: Connection) -> bool:
        """Wait up to 50 ms for a message from the model process or a wake-up (then the
        loop claims joiners at once); True if a message is there."""
        ready = wait([conn, self._wake_r], timeout=0.05)
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                while os.read(self._wake_r, 4096):
                    pass
        return conn in ready

    def _final_pending(self) -> bool:
        return any(r.pending and r.pending[0] >= r.pending[1] for r in self._running.values())

    def _anything_pending(self) -> bool:
        return any(r.pending or r.lines or r.preview for r in self._running.values())

    def _write_previews(self) -> None:
        """Each job's latest preview, at its fixed name (the events route reads it)."""
        for running in self._running.values():
            if running.preview is None:
                continue
            data, running.preview = running.preview, None
            try:
                self.storage.put(preview_name(running.job.id), data)
                running.previewed = True
            except Exception as exc:  # a preview is a courtesy: never fail the job
                log.warning("preview write failed: %s", exc)

    def _drop_preview(self, running: Running) -> None:
        """The job ended (or left this worker): its preview goes."""
        running.preview = None
        if running.previewed:
            running.previewed = False
            with contextlib.suppress(Exception):
                self.storage.delete(preview_name(running.job.id))

    def _flush(self, child: ModelProcess, *, everyone: bool = False) -> None:
        """Write the batch's progress and log lines in one transaction (also a heartbeat
        with ``everyone``); a job no longer ours is stopped. Previews are written first."""
        self._write_previews()
        updates = []
        for running in self._running.values():
            if running.pending or running.lines or everyone:
                step, total = running.pending or (running.step, running.total)
                updates.append((running.job, step, total, running.take_lines()))
                running.pending = None
        if not updates:
            return
        try:
            lost_ids = self.store.record_progress_many(updates)
        except Exception as exc:  # database away: keep working, the fence decides later
            log.warning("progress/heartbeat write failed: %s", exc)
            return
        HEARTBEATS.inc()
        for job_id in lost_ids:
            lost = self._running.get(job_id)
            if lost is not None:
                lost.lease_lost = True
                child.flags[lost.slot] = 1  # the job was taken from us (lease lost)

    def _handle(self, child: ModelProcess, running: Running, message: tuple[Any, ...]) -> None:
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
        if kind == "preview":
            running.preview = message[1]
            return
        del self._running[job.id]
        self._drop_preview(running)
        if kind == "done":
            billed = message[3] if len(message) > 3 else None
            progress = (running.step, running.total)
            self.recorder.finish(
                job, message[1], message[2], billed, running.take_lines(), progress
            )
        elif kind == "canceled":
            if self._handing_back and not running.user_canceled and not running.lease_lost:
                self.recorder.hand_back(job)
            else:
                self._canceled(running, message[1])
        elif kind == "error":  # ("error", message, seconds[, code, billed])
            code, billed = (*message[3:5], None, None)[:2]
            self.recorder.end(
                job, "failed", message[1], message[2] or None, running.take_lines(), code, billed
            )

    def _canceled(self, running: Running, predict_time: float) -> None:
        """Record where the job stopped, then mark it canceled."""
        job, step, total = running.job, running.step, running.total
        if running.signalled_at is not None:
            running.lines.append(
                f"canceled at step {step}/{total} "
                f"(the cancel reached the model process at step {running.signalled_at})"
            )
        with contextlib.suppress(Exception):
            self.store.record_progress_many([(job, step, total, running.take_lines())])
        self.recorder.end(job, "canceled", None, predict_time)

    def _crashed(self, child: ModelProcess) -> None:
        child.proc.join(5)
        code = child.proc.exitcode
        self._child = None
        for running in list(self._running.values()):
            if self._handing_back:
                self.recorder.hand_back(running.job)
                continue
            self.recorder.end(
                running.job,
                "failed",
                f"the model process exited unexpectedly (exit code {code}) while running this "
                "job; it has been restarted. If this repeats, the model may not fit in memory.",
                None,
                running.take_lines(),
            )
        self._forget_running()
