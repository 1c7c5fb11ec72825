"""What accounts do when a job changes state, inside the store's own transaction.

``JobStore`` calls these with the connection of the fenced update that changed
the job, so billing, file ownership and webhook events commit (or roll back)
together with the state change: exactly once, whatever retries or races happen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert

from sticker_maker.accounts import billing, speed, webhooks
from sticker_maker.db import files


def job_started(conn: Connection, job_row: Mapping[str, Any]) -> None:
    """A worker claimed the job (status running)."""
    webhooks.enqueue(conn, job_row, "start")


def job_progressed(conn: Connection, job_id: str) -> None:
    """Progress was recorded (the store throttles these to one per second per job)."""
    webhooks.enqueue_progress(conn, job_id)


def job_finished(conn: Connection, job_row: Mapping[str, Any]) -> None:
    """The job reached succeeded, failed or canceled: settle, own its files, notify."""
    billing.finalize(conn, job_row)
    speed.observe(conn, job_row)  # what the next reservation is estimated from
    now = time.time()
    for output in json.loads(job_row.get("output") or "[]"):
        record_file(conn, output["file"], job_row["key_id"], job_row["id"], now)
    webhooks.enqueue(conn, job_row, "completed")


def record_file(
    conn: Connection, name: str, key_id: str, job_id: str, now: float | None = None
) -> None:
    """Remember who owns a stored file (outputs now; image inputs when they arrive)."""
    conn.execute(
        insert(files).values(
            name=name, key_id=key_id, job_id=job_id, created_at=time.time() if now is None else now
        )
    )
