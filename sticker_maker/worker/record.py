"""Recording a job's end: outputs into storage, then the fenced completion in the queue.

Every write is fenced on the job's id and attempt: a worker that lost a job (its lease
expired and another attempt owns it) records nothing, and leaves no orphan files.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from sticker_maker.jobs import Job, JobStore, OutputFile
from sticker_maker.metrics import GPU_SECONDS, HANDED_BACK, JOBS_FINISHED, PREDICT_TIME
from sticker_maker.storage import Storage, new_file_name

if TYPE_CHECKING:
    from sticker_maker.worker.predictor import Sticker

log = logging.getLogger("sticker_maker.worker")


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

    def __init__(self, store: JobStore, storage: Storage) -> None:
        self.store = store
        self.storage = storage

    def hand_back(self, job: Job) -> None:
        """Give a running job back to the queue (a worker stopping); fenced."""
        if self.store.release(job):
            HANDED_BACK.inc()
            log.info("job %s handed back to the queue", job.id)

    def end(
        self,
        job: Job,
        status: str,
        error: str | None,
        predict_time: float | None = None,
        logs: str = "",
    ) -> None:
        """Record a job's end (fenced); count it if this attempt still owned the job."""
        try:
            if status == "canceled":
                owned = self.store.mark_canceled(job, predict_time)
            else:
                owned = self.store.fail(job, error or "failed", predict_time, logs)
        except Exception:
            log.exception("could not record the end of job %s; its lease will expire", job.id)
            return
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
            owned = self.store.complete(job, outputs, predict_time, billed_time, logs, progress)
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

    def _delete(self, outputs: list[OutputFile]) -> None:
        for output in outputs:
            with contextlib.suppress(Exception):
                self.storage.delete(output.file)
