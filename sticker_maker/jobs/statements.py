"""The queue's hot statements, built once (SQLAlchemy then reuses their compiled form).

The poll path reads a job by id (for its key) and counts the jobs ahead of it; the
claim path picks the oldest queued job, a batch of its key, or joiners of a running
batch. Every pick locks with ``SKIP LOCKED``, so concurrent PostgreSQL claimers take
different rows.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, func, or_, select

from sticker_maker.db import jobs
from sticker_maker.jobs.models import JobStatus

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value

#: the poll path
JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("id"))
KEYS_JOB = JOB_BY_ID.where(jobs.c.key_id == bindparam("key_id"))
AHEAD = select(func.count()).where(
    and_(jobs.c.status == QUEUED, jobs.c.created_at < bindparam("created_at"))
)

#: the claim's candidates: the oldest queued job, or it and the oldest queued jobs with
#: its batch key
OLDEST = (
    select(jobs.c.id)
    .where(jobs.c.status == QUEUED)
    .order_by(jobs.c.created_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)
OLDEST_KEY = (
    select(jobs.c.batch_key).where(jobs.c.status == QUEUED).order_by(jobs.c.created_at).limit(1)
)
BATCH = (
    select(jobs.c.id)
    .where(
        jobs.c.status == QUEUED,
        or_(
            jobs.c.id == OLDEST.scalar_subquery(),
            jobs.c.batch_key == OLDEST_KEY.scalar_subquery(),
        ),
    )
    .order_by(jobs.c.created_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
#: queued jobs that may join a running batch of key :key: only while the oldest queued job
#: has that key too (FIFO: a job of another key at the head stops the joining, the
#: running batch drains and that job goes next)
JOINERS = (
    select(jobs.c.id)
    .where(
        jobs.c.status == QUEUED,
        jobs.c.batch_key == bindparam("key"),
        OLDEST_KEY.scalar_subquery() == bindparam("key"),
    )
    .order_by(jobs.c.created_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
