"""Who is working: one row per worker process, refreshed on every heartbeat.

Only for operators (``/metrics``, ``db status``): job leases live on the job rows
themselves, so a lost row here never loses work.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from sticker_maker.db import Database, workers


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    state: str
    job_id: str | None
    jobs_done: int
    started_at: float
    heartbeat_at: float


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, worker_id: str) -> None:
        now = time.time()
        with self.db.write() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    state="starting",
                    jobs_done=0,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def beat(self, worker_id: str, state: str, job_id: str | None, jobs_done: int) -> None:
        """Refresh this worker's row (re-creating it if a prune removed it)."""
        values = {
            "state": state,
            "job_id": job_id,
            "jobs_done": jobs_done,
            "heartbeat_at": time.time(),
        }
        with self.db.write() as conn:
            result = conn.execute(update(workers).where(workers.c.id == worker_id).values(values))
            if result.rowcount == 0:
                conn.execute(
                    insert(workers).values(
                        id=worker_id,
                        hostname=socket.gethostname(),
                        pid=os.getpid(),
                        started_at=time.time(),
                        **values,
                    )
                )

    def remove(self, worker_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def prune(self, older_than: float) -> int:
        """Forget workers silent for ``older_than`` seconds; returns how many."""
        with self.db.write() as conn:
            result = conn.execute(
                delete(workers).where(workers.c.heartbeat_at < time.time() - older_than)
            )
        return result.rowcount

    def all(self) -> list[WorkerInfo]:
        with self.db.read() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.started_at)).mappings()
            return [WorkerInfo(**dict(r)) for r in rows]
