"""Idempotency keys for native submits (``Idempotency-Key`` header, Stripe / IETF draft).

Scoped per API key and stored in the database (safe with several processes):

* first request with a key: runs; its job id is bound in the submit transaction
  and its response stored when it is sent;
* same key, same body: the stored response is replayed (``Idempotent-Replayed: true``);
* same key while the first is still in flight: 409;
* same key, different body: 422.

A request that fails (400, 406, 429…) releases the key, so a corrected retry
runs. A first request that died in flight after its job was made is answered
from that job; one that died before is taken over after :data:`STALE_AFTER`
seconds. Keys expire with retention (the sweeper deletes them).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sticker_maker.db import Database, idempotency_keys
from sticker_maker.errors import Conflict, IdempotencyMismatch, InvalidInput

MAX_KEY = 255
#: an in-flight first request with no job after this many seconds is presumed dead
STALE_AFTER = 60.0


@dataclass(frozen=True)
class Replay:
    status: int | None  # None: the job exists but its response was never stored
    body: dict[str, Any] | None
    job_id: str | None


def request_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def check_key(value: str) -> str:
    if not 1 <= len(value) <= MAX_KEY or not value.isascii() or not value.isprintable():
        raise InvalidInput(
            f"must be 1-{MAX_KEY} printable ASCII characters (a UUID is a good choice)",
            "Idempotency-Key",
        )
    return value


class IdempotencyStore:
    def __init__(self, db: Database, retention_seconds: float) -> None:
        self.db = db
        self.retention_seconds = retention_seconds

    def begin(self, key_id: str, idem_key: str, digest: str) -> Replay | None:
        """None: go ahead (this request owns the key). A Replay: answer with it. Or raise."""
        check_key(idem_key)
        now = time.time()
        row_key = (idempotency_keys.c.key_id == key_id, idempotency_keys.c.idem_key == idem_key)
        with self.db.write() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            inserted = conn.execute(
                dialect.insert(idempotency_keys)
                .values(key_id=key_id, idem_key=idem_key, request_hash=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["key_id", "idem_key"])
                .returning(idempotency_keys.c.key_id)
            ).first()
            if inserted is not None:
                return None
            row = conn.execute(select(idempotency_keys).where(*row_key)).mappings().one()
            expired = row["created_at"] < now - self.retention_seconds
            stale = (
                row["response_status"] is None
                and row["job_id"] is None
                and row["created_at"] < now - STALE_AFTER
            )
            if expired or stale:
                conn.execute(
                    update(idempotency_keys)
                    .where(*row_key)
                    .values(
                        request_hash=digest,
                        job_id=None,
                        response_status=None,
                        response_body=None,
                        created_at=now,
                    )
                )
                return None
        if row["request_hash"] != digest:
            raise IdempotencyMismatch(
                "this Idempotency-Key was already used with a different request body; "
                "use a new key for a new request"
            )
        if row["response_status"] is not None:
            return Replay(row["response_status"], json.loads(row["response_body"]), row["job_id"])
        if row["job_id"] is not None:
            return Replay(None, None, row["job_id"])
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry in a moment"
        )

    def bind_job(self, conn: Connection, key_id: str, idem_key: str, job_id: str) -> None:
        """Inside the submit transaction: the key now stands for this job."""
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key_id == key_id, idempotency_keys.c.idem_key == idem_key)
            .values(job_id=job_id)
        )

    def finish(self, key_id: str, idem_key: str, status: int, body: dict[str, Any]) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.key_id == key_id, idempotency_keys.c.idem_key == idem_key)
                .values(response_status=status, response_body=json.dumps(body))
            )

    def release(self, key_id: str, idem_key: str) -> None:
        """The request failed before making a job: forget the key so a retry can run."""
        with self.db.write() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.key_id == key_id,
                    idempotency_keys.c.idem_key == idem_key,
                    idempotency_keys.c.job_id.is_(None),
                )
            )

    @staticmethod
    def expire(conn: Connection, before: float) -> int:
        return (
            conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
            ).rowcount
            or 0
        )
