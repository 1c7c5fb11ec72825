"""Retention: jobs, their inputs and files are deleted ``retention_seconds`` after completion
(files uploaded as inputs with ``POST /v1/files``: after the upload). A Replicate
prediction keeps its row, its data removed (``data_removed: true``), for ``RECORD_SECONDS``.

A background thread in ``serve`` (one per API process; the deletes are idempotent,
so several sweeping at once is harmless) runs :func:`sweep` every
``sweep_interval`` seconds. After it, the job and its file URLs answer 404.
Ledger rows are kept: they are the money history. Idempotency keys expire with
the same retention, finished webhook deliveries too, and old rate counters go.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import and_, delete, select, update

from sticker_maker.accounts import limits
from sticker_maker.accounts.idempotency import IdempotencyStore
from sticker_maker.db import Database, files, jobs, uploads, webhook_deliveries
from sticker_maker.storage import Storage

log = logging.getLogger("sticker_maker.retention")

TERMINAL = ("succeeded", "failed", "canceled")
BATCH = 500
#: undelivered webhook events are dropped this long after they were created
WEBHOOK_MAX_AGE = 24 * 3600.0
#: a Replicate prediction's row, its data removed at retention, is kept this long (then
#: deleted like every job), so it answers ``data_removed: true`` rather than 404
RECORD_SECONDS = 30 * 24 * 3600.0
#: how ``jobs.api`` says the data is gone (api.replicate_models.Asked)
REMOVED_MARK = '"removed": true'


@dataclass
class SweepResult:
    jobs: int = 0
    files: int = 0
    other: int = 0


def sweep(
    db: Database, storage: Storage, retention_seconds: float, now: float | None = None
) -> SweepResult:
    """One pass: delete what expired before ``now - retention_seconds``."""
    now = time.time() if now is None else now
    cutoff = now - retention_seconds
    result = SweepResult()
    result.files += _remove_prediction_data(db, storage, cutoff)
    # a Replicate prediction's row (its data removed) stays for RECORD_SECONDS
    kept = and_(jobs.c.api.is_not(None), jobs.c.completed_at >= now - RECORD_SECONDS)
    while True:
        with db.read() as conn:
            expired = (
                conn.execute(
                    select(jobs.c.id, jobs.c.output)
                    .where(jobs.c.status.in_(TERMINAL), jobs.c.completed_at < cutoff, ~kept)
                    .limit(BATCH)
                )
                .mappings()
                .all()
            )
            ids = [r["id"] for r in expired]
            names = set(conn.execute(select(files.c.name).where(files.c.job_id.in_(ids))).scalars())
        for row in expired:  # outputs of jobs finished before file ownership was recorded
            names.update(o["file"] for o in json.loads(row["output"] or "[]"))
        for name in names:  # files first: a crash here leaves rows that the next pass retries
            with contextlib.suppress(FileNotFoundError):
                storage.delete(name)
        with db.write() as conn:
            conn.execute(delete(files).where(files.c.job_id.in_(ids)))
            conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        result.jobs += len(ids)
        result.files += len(names)
        if len(ids) < BATCH:
            break
    with db.read() as conn:  # files uploaded as inputs (POST /v1/files) expire too
        uploaded = conn.execute(
            select(uploads.c.id, uploads.c.name).where(uploads.c.created_at < cutoff)
        ).all()
    for _, name in uploaded:
        with contextlib.suppress(FileNotFoundError):
            storage.delete(name)
    result.files += len(uploaded)
    with db.write() as conn:
        if uploaded:
            conn.execute(delete(uploads).where(uploads.c.id.in_([i for i, _ in uploaded])))
        result.other += IdempotencyStore.expire(conn, cutoff)
        result.other += (
            conn.execute(
                delete(webhook_deliveries).where(
                    webhook_deliveries.c.status != "pending",
                    webhook_deliveries.c.finished_at < cutoff,
                )
            ).rowcount
            or 0
        )
        result.other += (
            conn.execute(
                delete(webhook_deliveries).where(
                    webhook_deliveries.c.created_at < now - max(WEBHOOK_MAX_AGE, retention_seconds)
                )
            ).rowcount
            or 0
        )
        result.other += limits.forget_old_windows(conn, now)
    if result.jobs:
        log.info("retention: deleted %d jobs and %d files", result.jobs, result.files)
    return result


def _remove_prediction_data(db: Database, storage: Storage, cutoff: float) -> int:
    """Replicate predictions past retention keep their row with ``data_removed``: their
    files are deleted, the prompt, output and logs blanked. The files deleted."""
    removed = 0
    while True:
        with db.read() as conn:
            rows = (
                conn.execute(
                    select(jobs.c.id, jobs.c.output, jobs.c.input, jobs.c.api)
                    .where(
                        jobs.c.status.in_(TERMINAL),
                        jobs.c.completed_at < cutoff,
                        jobs.c.api.is_not(None),
                        ~jobs.c.api.contains(REMOVED_MARK),
                    )
                    .limit(BATCH)
                )
                .mappings()
                .all()
            )
            ids = [r["id"] for r in rows]
            names = set(conn.execute(select(files.c.name).where(files.c.job_id.in_(ids))).scalars())
        for row in rows:
            names.update(o["file"] for o in json.loads(row["output"] or "[]"))
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                storage.delete(name)
        with db.write() as conn:
            conn.execute(delete(files).where(files.c.job_id.in_(ids)))
            for row in rows:
                blank = {**json.loads(row["input"]), "prompt": "", "negative_prompt": ""}
                asked = {**json.loads(row["api"]), "input": {}, "removed": True}
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row["id"])
                    .values(input=json.dumps(blank), output="[]", logs="", api=json.dumps(asked))
                )
        removed += len(names)
        if len(rows) < BATCH:
            return removed


class Sweeper:
    """Runs :func:`sweep` every ``interval`` seconds in a daemon thread."""

    def __init__(
        self, db: Database, storage: Storage, retention_seconds: float, interval: float
    ) -> None:
        self.db = db
        self.storage = storage
        self.retention_seconds = retention_seconds
        self.interval = max(interval, 0.05)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="sm-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.db, self.storage, self.retention_seconds)
            except Exception:
                log.exception("retention sweep failed; retrying next interval")
