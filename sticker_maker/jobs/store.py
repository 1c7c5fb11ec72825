"""The job queue. Each query is short and named after what it does.

At-least-once: this module is the API side (submit, read, cancel);
:mod:`sticker_maker.jobs.running` the worker side (claims, leases, progress, the fenced
end of a job); :mod:`sticker_maker.jobs.statements` the hot statements both build once.
On PostgreSQL every transaction that queues
work also sends a NOTIFY on :data:`~sticker_maker.db.database.JOBS_CHANNEL`, and
every one that ends a job a NOTIFY on ``DONE_CHANNEL`` with the job's id.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection, and_, insert, select, update

from sticker_maker.accounts import lifecycle
from sticker_maker.db import Database, jobs
from sticker_maker.db.database import DONE_CHANNEL
from sticker_maker.errors import NotFound
from sticker_maker.inputs import UploadInput
from sticker_maker.jobs.models import Job, JobStatus
from sticker_maker.jobs.running import Reaped, RunningJobs
from sticker_maker.jobs.statements import AHEAD, JOB_BY_ID, KEYS_JOB, QUEUED, RUNNING
from sticker_maker.params import JobInput, batch_key_text

__all__ = ["Admission", "JobStore", "Reaped"]

_JOB_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")

#: runs inside the submit transaction before the insert and may raise (limits, credits);
#: returns extra column values. ``accounts.admission.Admission`` is the one the API sets.


class Admission(Protocol):
    """``screen`` runs first, outside any transaction (the content check); its result
    goes to the call, inside the submit transaction, which may raise."""

    def screen(self, job_input: JobInput | UploadInput) -> Any: ...

    def __call__(
        self, conn: Connection, key_id: str, job_id: str, job_input: Any, screened: Any
    ) -> dict[str, Any]: ...


class JobStore(RunningJobs):
    """The job queue: the API side here, the worker side in :class:`RunningJobs`."""

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
            "batch_key": batch_key_text(job_input) if isinstance(job_input, JobInput) else None,
        }
        # the content check runs before the write transaction: a text model may be slow
        screened = self.admission.screen(job_input) if self.admission is not None else None
        with self.db.write() as conn:
            if self.admission is not None:
                values.update(self.admission(conn, key_id, job_id, job_input, screened))
            conn.execute(insert(jobs).values(**values))
            if on_created is not None:
                on_created(conn, job_id)
            self.db.notify(conn)
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
            safety=values.get("safety"),
        )

    def get(self, job_id: str, key_id: str | None = None) -> Job:
        """The job, or :class:`NotFound` (also when it belongs to another key)."""
        with self.db.read() as conn:
            return self._get(conn, job_id, key_id)

    def get_with_position(self, job_id: str, key_id: str | None = None) -> tuple[Job, int | None]:
        """The job and, while it is queued, its queue position (one read transaction)."""
        with self.db.read() as conn:
            job = self._get(conn, job_id, key_id)
            if job.status is not JobStatus.QUEUED:
                return job, None
            return job, self._position(conn, job)

    def _get(self, conn: Connection, job_id: str, key_id: str | None) -> Job:
        if not _JOB_ID.match(job_id):
            raise NotFound(f"job {job_id[:64]!r} not found")
        if key_id is None:
            row = conn.execute(JOB_BY_ID, {"id": job_id}).mappings().first()
        else:
            row = conn.execute(KEYS_JOB, {"id": job_id, "key_id": key_id}).mappings().first()
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
            return self._position(conn, job)

    @staticmethod
    def _position(conn: Connection, job: Job) -> int:
        return int(conn.execute(AHEAD, {"created_at": job.created_at}).scalar() or 0)

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
                self.db.notify(conn, DONE_CHANNEL, job_id)
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
