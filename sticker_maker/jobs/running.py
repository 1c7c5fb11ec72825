"""The worker side of the queue: claims, leases, progress and the fenced end of a job.

A worker claims a job by moving it to ``running`` in one statement (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``). Every
later write is fenced on ``(id, attempt, running)``, so a late worker whose job was
handed to another cannot overwrite the retry. A running job carries ``heartbeat_at``,
refreshed by its worker; :meth:`RunningJobs.reap_expired` re-queues the jobs of
workers that stopped refreshing (or, after ``max_attempts`` claims, fails them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, or_, select, update

from sticker_maker.accounts import lifecycle
from sticker_maker.accounts.webhooks import PROGRESS_EVERY, wants
from sticker_maker.db import Database, jobs
from sticker_maker.db.database import DONE_CHANNEL
from sticker_maker.jobs.models import Job, JobStatus, OutputFile
from sticker_maker.jobs.statements import BATCH, JOINERS, OLDEST, QUEUED, RUNNING


@dataclass(frozen=True)
class Reaped:
    """What one :meth:`JobStore.reap_expired` pass did."""

    requeued: list[str]
    failed: list[str]
    canceled: list[str]


class RunningJobs:
    """The queue's methods a worker calls (mixed into :class:`~sticker_maker.jobs.JobStore`)."""

    db: Database
    on_submit: list[Callable[[], None]]
    on_finish: list[Callable[[str], None]]
    _progress_sent: dict[str, float]

    def claim_next(self, worker_id: str) -> Job | None:
        """Move the oldest queued job to running for ``worker_id``; None if the queue is empty."""
        claimed = self.claim_batch(worker_id, 1)
        return claimed[0] if claimed else None

    def claim_batch(self, worker_id: str, limit: int) -> list[Job]:
        """Claim the oldest queued job and up to ``limit - 1`` more that can share its
        model call (same ``batch_key``), oldest first, in one statement."""
        return self._claim(BATCH if limit > 1 else OLDEST, worker_id, {"limit": limit})

    def claim_joiners(self, worker_id: str, batch_key: str, limit: int) -> list[Job]:
        """Claim up to ``limit`` queued jobs of ``batch_key`` to join a running batch,
        oldest first; none while the oldest queued job has another key."""
        return self._claim(JOINERS, worker_id, {"limit": limit, "key": batch_key})

    def _claim(self, pick: Any, worker_id: str, params: dict[str, Any]) -> list[Job]:
        now = time.time()
        # a materialised CTE: PostgreSQL runs the locking pick once (as ``IN (subquery)``
        # it may re-run it per row and claim more than ``limit``)
        picked = pick.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
        claim = (
            update(jobs)
            .where(jobs.c.id.in_(select(picked.c.id)), jobs.c.status == QUEUED)
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
            rows = conn.execute(claim, params).mappings().all()
            for row in rows:
                lifecycle.job_started(conn, row)
        return sorted((Job.from_row(r) for r in rows), key=lambda j: j.created_at)

    def release(self, job: Job, why: str = "the worker shut down") -> bool:
        """Hand a running job back to the queue (a worker shutting down). Fenced.

        The attempt is given back too: the job was not at fault, so a rolling
        restart does not use up its retries. This is safe because the releasing
        worker writes nothing more for this job after this call.
        """
        with self.db.write() as conn:
            result = conn.execute(
                update(jobs)
                .where(self._fenced(job))
                .values(
                    status=QUEUED,
                    attempt=jobs.c.attempt - 1,
                    worker_id=None,
                    heartbeat_at=None,
                    progress_step=0,
                    logs=jobs.c.logs + f"{why}; job handed back to the queue\n",
                )
            )
            if result.rowcount:
                self.db.notify(conn)
        for callback in self.on_submit:
            callback()
        return result.rowcount == 1

    def reap_expired(self, lease_timeout: float, max_attempts: int) -> Reaped:
        """Re-queue running jobs whose worker stopped sending heartbeats.

        Idempotent; safe from every process at once. One statement re-queues
        (attempts left, no cancel asked); the rare rest end through the fenced
        :meth:`fail` / :meth:`mark_canceled`, so each ends exactly once.
        """
        cutoff = time.time() - lease_timeout
        expired = and_(jobs.c.status == RUNNING, jobs.c.heartbeat_at < cutoff)
        lost = (
            "attempt "
            + cast(jobs.c.attempt, String)
            + ": the worker stopped sending heartbeats; job re-queued\n"
        )
        requeue = (
            update(jobs)
            .where(
                and_(
                    expired,
                    jobs.c.attempt < max_attempts,
                    jobs.c.cancel_requested == False,  # noqa: E712
                )
            )
            .values(
                status=QUEUED,
                worker_id=None,
                heartbeat_at=None,
                progress_step=0,
                logs=jobs.c.logs + lost,
            )
            .returning(jobs.c.id)
        )
        with self.db.write() as conn:
            requeued = [str(r) for r in conn.execute(requeue).scalars()]
            if requeued:
                self.db.notify(conn)
        if requeued:
            for callback in self.on_submit:
                callback()
        give_up = select(jobs).where(
            and_(expired, or_(jobs.c.attempt >= max_attempts, jobs.c.cancel_requested == True))  # noqa: E712
        )
        with self.db.read() as conn:
            ending = [Job.from_row(r) for r in conn.execute(give_up).mappings()]
        failed, canceled = [], []
        for job in ending:
            if job.cancel_requested:
                if self.mark_canceled(job):
                    canceled.append(job.id)
            elif self.fail(
                job,
                f"the job's worker stopped responding on each of {job.attempt} attempts "
                f"(no heartbeat for {lease_timeout:g}s); giving up. This usually means the "
                "worker ran out of memory or its machine went away.",
            ):
                failed.append(job.id)
        return Reaped(requeued, failed, canceled)

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

    def record_progress_many(self, updates: list[tuple[Job, int, int, str]]) -> set[str]:
        """Progress (a heartbeat) and new log lines for several running jobs in one write
        transaction, each fenced on its own id + attempt. The ids no longer ours."""
        lost = set()
        now = time.time()
        with self.db.write() as conn:
            for job, step, total, lines in updates:
                values: dict[str, Any] = {
                    "progress_step": step,
                    "progress_total": total,
                    "heartbeat_at": now,
                }
                if lines:
                    values["logs"] = jobs.c.logs + lines
                result = conn.execute(update(jobs).where(self._fenced(job)).values(**values))
                if result.rowcount != 1:
                    lost.add(job.id)
                elif self._progress_event_due(job):
                    lifecycle.job_progressed(conn, job.id)
        return lost

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

    def cancel_requested_among(self, among: list[Job]) -> set[str]:
        """The ids of ``among`` whose cancel was requested (one read for a whole batch)."""
        if not among:
            return set()
        with self.db.read() as conn:
            return set(
                conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.id.in_([j.id for j in among]), jobs.c.cancel_requested
                    )
                ).scalars()
            )

    def complete(
        self,
        job: Job,
        output: list[OutputFile],
        predict_time: float,
        billed_time: float | None = None,
        logs: str = "",
        progress: tuple[int, int] | None = None,
    ) -> bool:
        """Mark succeeded with outputs. False (and nothing written) if fenced out.

        ``billed_time``: a batched job's share of the shared model call (billed instead
        of ``predict_time``, which stays the time the model took to give its images).
        ``progress``: the last (step, total) the worker saw, written with the completion so
        a finished job never shows progress that was still waiting to be flushed.
        """
        extra: dict[str, object] = {"logs": jobs.c.logs + logs} if logs else {}
        if progress is not None:
            extra.update(progress_step=progress[0], progress_total=progress[1])
        return self._finish(
            job,
            JobStatus.SUCCEEDED,
            predict_time=predict_time,
            billed_time=billed_time,
            output=json.dumps([o.to_dict() for o in output]),
            **extra,
        )

    def fail(
        self,
        job: Job,
        error: str,
        predict_time: float | None = None,
        logs: str = "",
        *,
        code: str | None = None,
        billed_time: float | None = None,
    ) -> bool:
        """Mark failed. ``code``: the error's code (``content_blocked``…); ``billed_time``:
        seconds to bill all the same (only a refused image, when the operator says so)."""
        extra: dict[str, object] = {"logs": jobs.c.logs + logs} if logs else {}
        if code is not None:
            extra["error_code"] = code
        if billed_time is not None:
            extra["billed_time"] = billed_time
        return self._finish(job, JobStatus.FAILED, predict_time=predict_time, error=error, **extra)

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
                self.db.notify(conn, DONE_CHANNEL, job.id)
        self._progress_sent.pop(job.id, None)
        if row is not None:
            self._finished(job.id)
        return row is not None

    def _finished(self, job_id: str) -> None:
        for callback in self.on_finish:
            callback(job_id)
