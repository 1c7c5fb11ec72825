"""The job queue. Each query is short and named after what it does.

At-least-once: a worker claims a job by moving it to ``running`` in one
statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers
with ``BEGIN IMMEDIATE``). Completion is fenced on ``(id, attempt, running)`` so
a late worker whose job was handed to another cannot overwrite the retry.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: F401  (issue 6)

from sticker_maker.accounts import lifecycle
from sticker_maker.accounts.webhooks import PROGRESS_EVERY, wants
from sticker_maker.db import Database, jobs
from sticker_maker.errors import NotFound
from sticker_maker.inputs import UploadInput
from sticker_maker.jobs.models import Job, JobStatus, OutputFile
from sticker_maker.params import JobInput

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value
_JOB_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")

#: runs inside the submit transaction before the insert and may raise (limits, credits);
#: returns extra column values. ``accounts.admission.Admission`` is the one the API sets.
Admission = Callable[[Connection, str, str, JobInput | UploadInput], dict[str, Any]]


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: called after a job is queued (the in-process worker's wake-up)
        self.on_submit: list[Callable[[], None]] = []
        #: called with the job id after a job reaches a terminal state in this process
        #: (wakes API requests waiting for it; other processes fall back to polling)
        self.on_finish: list[Callable[[str], None]] = []
        #: called with a running job's id after its cancel was requested (the in-process
        #: worker stops it at once instead of at its next database poll)
        self.on_cancel: list[Callable[[str], None]] = []
        self.admission: Admission | None = None
        self._progress_sent: dict[str, float] = {}  # job id → when its last progress event went

    # -- API side ---------------------------------------------------------------

    def submit(
        self,
        key_id: str,
        job_input: JobInput | UploadInput,
        *,
        kind: str = "generate",
        webhook: str | None = None,
        on_created: Callable[[Connection, str], None] | None = None,
    ) -> Job:
        """Queue a job; admission (limits, credits) and ``on_created`` share its transaction."""
        job_id = str(uuid.uuid4())
        now = time.time()
        values = {
            "id": job_id,
            "key_id": key_id,
            "kind": kind,
            "preset": job_input.preset,
            "input": job_input.model_dump_json(),
            "status": QUEUED,
            "logs": "",
            "progress_step": 0,
            "progress_total": job_input.steps,
            "attempt": 0,
            "cancel_requested": False,
            "created_at": now,
            "webhook": webhook,
        }
        with self.db.write() as conn:
            if self.admission is not None:
                values.update(self.admission(conn, key_id, job_id, job_input))
            conn.execute(insert(jobs).values(**values))
            if on_created is not None:
                on_created(conn, job_id)
        for callback in self.on_submit:
            callback()
        return Job(
            id=job_id,
            key_id=key_id,
            kind=kind,
            preset=job_input.preset,
            input=job_input,
            status=JobStatus.QUEUED,
            progress_total=job_input.steps,
            created_at=now,
            webhook=webhook,
        )

    def get(self, job_id: str, key_id: str | None = None) -> Job:
        """The job, or :class:`NotFound` (also when it belongs to another key)."""
        if not _JOB_ID.match(job_id):
            raise NotFound(f"job {job_id[:64]!r} not found")
        query = select(jobs).where(jobs.c.id == job_id)
        if key_id is not None:
            query = query.where(jobs.c.key_id == key_id)
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return Job.from_row(row)

    def list_for_key(self, key_id: str, *, limit: int = 50) -> list[Job]:
        query = (
            select(jobs)
            .where(jobs.c.key_id == key_id)
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def queue_position(self, job: Job) -> int:
        """How many queued jobs are ahead of this one (0 = next)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        and_(jobs.c.status == QUEUED, jobs.c.created_at < job.created_at)
                    )
                ).scalar()
                or 0
            )

    def request_cancel(self, job_id: str, key_id: str | None = None) -> Job:
        """Cancel a queued job at once; flag a running one for the worker to stop."""
        job = self.get(job_id, key_id)
        if job.status is JobStatus.RUNNING:  # tell an in-process worker before the write
            for callback in self.on_cancel:
                callback(job.id)
        now = time.time()
        with self.db.write() as conn:
            canceled = (
                conn.execute(
                    update(jobs)
                    .where(and_(jobs.c.id == job_id, jobs.c.status == QUEUED))
                    .values(
                        status=JobStatus.CANCELED.value, completed_at=now, cancel_requested=True
                    )
                    .returning(*jobs.c)
                )
                .mappings()
                .first()
            )
            if canceled is not None:
                lifecycle.job_finished(conn, canceled)
            conn.execute(
                update(jobs)
                .where(and_(jobs.c.id == job_id, jobs.c.status == RUNNING))
                .values(cancel_requested=True)
            )
        if canceled is not None:
            self._finished(job.id)
        if job.status is JobStatus.QUEUED:  # it may have been claimed in the meantime
            for callback in self.on_cancel:
                callback(job.id)
        return self.get(job.id)

    # -- worker side ------------------------------------------------------------

    def claim_next(self, worker_id: str) -> Job | None:
        """Move the oldest queued job to running for ``worker_id``; None if the queue is empty."""
        now = time.time()
        oldest = (
            select(jobs.c.id)
            .where(jobs.c.status == QUEUED)
            .order_by(jobs.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            update(jobs)
            .where(and_(jobs.c.id == oldest, jobs.c.status == QUEUED))
            .values(
                status=RUNNING,
                worker_id=worker_id,
                attempt=jobs.c.attempt + 1,
                started_at=now,
                heartbeat_at=now,
                progress_step=0,
            )
            .returning(*jobs.c)
        )
        with self.db.write() as conn:
            row = conn.execute(claim).mappings().first()
            if row is not None:
                lifecycle.job_started(conn, row)
        return Job.from_row(row) if row else None

    def _fenced(self, job: Job):  # type: ignore[no-untyped-def]
        return and_(jobs.c.id == job.id, jobs.c.attempt == job.attempt, jobs.c.status == RUNNING)

    def record_progress(self, job: Job, step: int, total: int) -> bool:
        """Store progress (also a heartbeat). False if the job is no longer ours."""
        with self.db.write() as conn:
            result = conn.execute(
                update(jobs)
                .where(self._fenced(job))
                .values(progress_step=step, progress_total=total, heartbeat_at=time.time())
            )
            if result.rowcount == 1 and self._progress_event_due(job):
                lifecycle.job_progressed(conn, job.id)
        return result.rowcount == 1

    def _progress_event_due(self, job: Job) -> bool:
        if not wants(job.webhook, "progress"):
            return False
        now = time.monotonic()
        if now - self._progress_sent.get(job.id, float("-inf")) < PROGRESS_EVERY:
            return False
        if len(self._progress_sent) > 1000:
            self._progress_sent.clear()
        self._progress_sent[job.id] = now
        return True

    def append_log(self, job: Job, line: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(jobs).where(self._fenced(job)).values(logs=jobs.c.logs + line + "\n")
            )

    def cancel_requested(self, job: Job) -> bool:
        with self.db.read() as conn:
            return bool(
                conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job.id)).scalar()
            )

    def complete(self, job: Job, output: list[OutputFile], predict_time: float) -> bool:
        """Mark succeeded with outputs. False (and nothing written) if fenced out."""
        return self._finish(
            job,
            JobStatus.SUCCEEDED,
            predict_time=predict_time,
            output=json.dumps([o.to_dict() for o in output]),
        )

    def fail(self, job: Job, error: str, predict_time: float | None = None) -> bool:
        return self._finish(job, JobStatus.FAILED, predict_time=predict_time, error=error)

    def mark_canceled(self, job: Job, predict_time: float | None = None) -> bool:
        return self._finish(
            job, JobStatus.CANCELED, predict_time=predict_time, error="canceled by request"
        )

    def _finish(self, job: Job, status: JobStatus, **values: object) -> bool:
        """The fenced end of a job; billing, file ownership and webhooks in the same transaction."""
        with self.db.write() as conn:
            row = (
                conn.execute(
                    update(jobs)
                    .where(self._fenced(job))
                    .values(status=status.value, completed_at=time.time(), **values)
                    .returning(*jobs.c)
                )
                .mappings()
                .first()
            )
            if row is not None:
                lifecycle.job_finished(conn, row)
        self._progress_sent.pop(job.id, None)
        if row is not None:
            self._finished(job.id)
        return row is not None

    def _finished(self, job_id: str) -> None:
        for callback in self.on_finish:
            callback(job_id)
