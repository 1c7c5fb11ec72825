"""Recording a job's end: outputs into storage, then the fenced completion in the queue.

Every write is fenced on the job's id and attempt: a worker that lost a job (its lease
expired and another attempt owns it) records nothing, and leaves no orphan files.

Faults are waited out, not turned into failed jobs (``sticker_maker.faults``):

* outputs that cannot be written (disk full, object store unreachable): the files
  written so far are deleted and the job goes back to the queue without using up an
  attempt; this worker claims nothing for ``OUTPUT_RETRY_SECONDS``, then tries again;
* the database unreachable when the end is recorded: the worker keeps the job and its
  outputs and retries (backing off up to ``RECORD_BACKOFF_MAX``) for as long as
  ``record_patience`` allows. A commit whose answer was lost is recognised on the
  next try (the job already carries this attempt's outputs), so nothing is billed
  twice and no output is deleted that a finished job points at. If the database stays
  away longer, the outputs are deleted and the lease runs out: the job runs again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sticker_maker.errors import ContentBlocked
from sticker_maker.faults import is_database_unreachable, is_disk_full, is_storage_unreachable
from sticker_maker.jobs import Job, JobStore, OutputFile
from sticker_maker.metrics import (
    CONTENT_BLOCKED,
    GPU_SECONDS,
    HANDED_BACK,
    JOBS_FINISHED,
    PREDICT_TIME,
)
from sticker_maker.storage import Storage, content_type, new_file_name

if TYPE_CHECKING:
    from sticker_maker.worker.predictor import Sticker

log = logging.getLogger("sticker_maker.worker")
T = TypeVar("T")

#: after a job went back because its outputs could not be written, claim nothing for this long
OUTPUT_RETRY_SECONDS = 10.0
#: first and longest wait between tries to record a job's end while the database is away
RECORD_BACKOFF_FIRST = 0.25
RECORD_BACKOFF_MAX = 5.0


def job_line(
    job: Job, outcome: str, seconds: float | None = None, error: str | None = None
) -> None:
    """One log line an operator can grep: the job, what it is, how long, how it went."""
    took = f"{seconds:.2f}s" if seconds is not None else "-"
    detail = f": {error}" if error and outcome != "succeeded" else ""
    level = logging.WARNING if outcome == "failed" else logging.INFO
    preset = getattr(job.input, "preset", None) or "-"
    log.log(
        level,
        "job %s %s kind=%s preset=%s seconds=%s%s",
        job.id,
        outcome,
        job.kind,
        preset,
        took,
        detail,
    )


class Recorder:
    """Writes jobs' results for a worker."""

    def __init__(
        self, store: JobStore, storage: Storage, *, record_patience: float = 600.0
    ) -> None:
        self.store = store
        self.storage = storage
        #: seconds to keep retrying a job's end while the database is unreachable
        self.record_patience = record_patience
        #: monotonic time before which the worker should claim nothing (outputs unwritable)
        self.pause_until = 0.0
        #: set to stop retrying at once (the worker is stopping)
        self.stopping = threading.Event()
        #: jobs handed back because their outputs could not be written / ends retried
        self.outputs_refused = 0
        self.record_retries = 0

    def hand_back(self, job: Job, why: str = "the worker shut down") -> None:
        """Give a running job back to the queue (a worker stopping); fenced."""
        try:
            released = self.store.release(job, why)
        except Exception as exc:  # database away: the lease runs out and the reaper re-queues
            log.warning("could not hand job %s back (%s); its lease will expire", job.id, exc)
            return
        if released:
            HANDED_BACK.inc()
            log.info("job %s handed back to the queue", job.id)

    def end(
        self,
        job: Job,
        status: str,
        error: str | None,
        predict_time: float | None = None,
        logs: str = "",
        code: str | None = None,
        billed_time: float | None = None,
    ) -> None:
        """Record a job's end (fenced); count it if this attempt still owned the job.

        ``code``: the error's code; ``billed_time``: seconds billed although it failed
        (only a refused image, when the operator charges for it)."""

        def record() -> bool:
            if status == "canceled":
                return self.store.mark_canceled(job, predict_time)
            return self.store.fail(
                job, error or "failed", predict_time, logs, code=code, billed_time=billed_time
            )

        try:
            owned = self._patiently(job, record, lambda: self._ended_as(job, status))
        except Exception:
            log.exception("could not record the end of job %s; its lease will expire", job.id)
            return
        if owned and code == ContentBlocked.code:
            CONTENT_BLOCKED.labels("image").inc()
            # the job and the stage, never the prompt
            log.info("job %s refused by the content policy: stage image", job.id)
        if owned:
            JOBS_FINISHED.labels(status).inc()
            if predict_time:
                PREDICT_TIME.observe(predict_time)
            job_line(job, status, predict_time, error)

    def finish(
        self,
        job: Job,
        stickers: list[Sticker],
        predict_time: float,
        billed_time: float | None = None,
        logs: str = "",
        progress: tuple[int, int] | None = None,
    ) -> None:
        outputs: list[OutputFile] = []
        expressions = getattr(job.input, "expressions", ())
        try:
            for index, sticker in enumerate(stickers):
                # a pack's sticker is tagged with its expression and emoji
                expression = expressions[index] if index < len(expressions) else None
                for kind, data, width, height in sticker.files():
                    name = new_file_name(sticker.ext)
                    self.storage.put(name, data)
                    outputs.append(
                        OutputFile(
                            file=name,
                            kind=kind,
                            index=index,
                            seed=sticker.seed,
                            width=width,
                            height=height,
                            content_type=content_type(name),
                            expression=expression.name if expression else None,
                            emoji=expression.emoji if expression else None,
                            empty=kind == "sticker" and sticker.empty,
                        )
                    )
        except Exception as exc:
            self._delete(outputs)
            if not (is_disk_full(exc) or is_storage_unreachable(exc)):
                raise
            self.outputs_refused += 1
            self.pause_until = time.monotonic() + OUTPUT_RETRY_SECONDS
            log.warning(
                "job %s: outputs cannot be written (%s); handing it back and claiming nothing "
                "for %.0f s",
                job.id,
                exc,
                OUTPUT_RETRY_SECONDS,
            )
            self.hand_back(job, f"its outputs could not be written ({exc})")
            return
        try:
            owned = self._patiently(
                job,
                lambda: self.store.complete(
                    job, outputs, predict_time, billed_time, logs, progress
                ),
                lambda: self._completed_with(job, outputs),
            )
        except BaseException:
            self._delete(outputs)
            raise
        if owned:
            job_line(job, "succeeded", predict_time)
            JOBS_FINISHED.labels("succeeded").inc()
            PREDICT_TIME.observe(predict_time)
            GPU_SECONDS.inc(billed_time if billed_time is not None else predict_time)
        else:
            # Fenced out: another attempt owns this job now. Leave no orphan files.
            self._delete(outputs)

    def _patiently(self, job: Job, record: Callable[[], bool], done: Callable[[], bool]) -> bool:
        """``record()``, tried again while the database is unreachable.

        After a failed try ``done()`` asks whether the write was committed after all
        (its answer lost with the connection): then it is not written twice.
        """
        deadline = time.monotonic() + self.record_patience
        wait = RECORD_BACKOFF_FIRST
        tried = False
        while True:
            try:
                if tried and done():
                    return True
                return record()
            except Exception as exc:
                if not is_database_unreachable(exc) or time.monotonic() + wait > deadline:
                    raise
                if self.stopping.is_set():
                    raise
                tried = True
                self.record_retries += 1
                log.warning("job %s: database away (%s); retrying in %.2fs", job.id, exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, RECORD_BACKOFF_MAX)

    def _completed_with(self, job: Job, outputs: list[OutputFile]) -> bool:
        """This attempt's completion was committed (the job holds these outputs)."""
        current = self.store.get(job.id)
        return (
            current.status.value == "succeeded"
            and current.attempt == job.attempt
            and [o.file for o in current.output] == [o.file for o in outputs]
        )

    def _ended_as(self, job: Job, status: str) -> bool:
        current = self.store.get(job.id)
        return current.status.value == status and current.attempt == job.attempt

    def _delete(self, outputs: list[OutputFile]) -> None:
        for output in outputs:
            with contextlib.suppress(Exception):
                self.storage.delete(output.file)
