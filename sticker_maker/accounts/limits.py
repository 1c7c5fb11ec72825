"""Limits: per-key request rate, per-key submit rate and concurrency, a global queue cap.

Every count lives in the database, so the limits hold across any number of API
processes sharing it:

* requests per minute (any authenticated request): a counter per key and minute
  in ``rate_windows``, incremented by one atomic upsert; the limit is checked
  against a sliding estimate (the previous minute weighted by how much of it
  still overlaps the last 60 s, plus the current minute), so a burst across a
  minute boundary cannot pass twice the limit.
* submits per minute: the key's jobs created in the last 60 s (exact, no counter).
* jobs queued or running per key, and queued jobs in the whole service: counted
  in the submit transaction, so a rejected submit creates nothing.

A limit of 0 means "no limit". Per-key overrides (``api_keys`` columns) win over
the service defaults (``Settings``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from sticker_maker.accounts.keys import ApiKey
from sticker_maker.db import Database, jobs, rate_windows
from sticker_maker.errors import RateLimited, ServiceBusy
from sticker_maker.faults import unavailable

log = logging.getLogger("sticker_maker.accounts")

WINDOW = 60
#: Retry-After for "too many jobs in flight" and "queue full" (seconds)
ACTIVE_RETRY_AFTER = 5.0
BUSY_RETRY_AFTER = 10.0


def effective(override: int | None, default: int) -> int:
    return default if override is None else int(override)


#: seconds between writes of one process's request counts for one key (see RequestCounter)
FLUSH_EVERY = 0.25


class RequestCounter:
    """Per-process request counting, written to the database at most every ``FLUSH_EVERY``.

    Each authenticated request used to be one write transaction (an upsert): on SQLite
    every poll then queued for the database's single write lock. Now a process counts
    its own requests in memory, exactly, and adds them to the shared ``rate_windows``
    counter when the last write for that key is older than ``FLUSH_EVERY`` (reading back
    the total, which includes the other processes' hits). One process's limit is exact;
    across processes each sees the others' hits at most ``FLUSH_EVERY`` late.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        #: (key id, window start) → hits counted here and not yet written
        self._pending: dict[tuple[str, int], int] = {}
        #: key id → (when last written, {window start: total hits read back})
        self._known: dict[str, tuple[float, dict[int, int]]] = {}

    def needs_write(self, key: ApiKey, settings: Any, now: float | None = None) -> bool:
        """Whether counting a request for ``key`` now would write to the database."""
        if effective(key.requests_per_minute, settings.requests_per_minute) <= 0:
            return False
        now = time.time() if now is None else now
        written_at, known = self._known.get(key.id, (float("-inf"), {}))
        return now - written_at >= FLUSH_EVERY or int(now // WINDOW) * WINDOW not in known

    def count(
        self, key: ApiKey, settings: Any, now: float | None = None, *, may_write: bool = True
    ) -> None:
        """Count one request for ``key``; :class:`RateLimited` (429) when over its limit.

        ``may_write=False``: never write now (the caller is on the event loop); the hits
        are written by the next call that may.
        """
        limit = effective(key.requests_per_minute, settings.requests_per_minute)
        if limit <= 0:
            return
        now = time.time() if now is None else now
        window = int(now // WINDOW) * WINDOW
        with self._lock:
            slot = (key.id, window)
            self._pending[slot] = self._pending.get(slot, 0) + 1
            written_at, known = self._known.get(key.id, (float("-inf"), {}))
            due = now - written_at >= FLUSH_EVERY or window not in known
        if due and may_write:
            try:
                known = self._flush(key.id, window, now)
            except Exception as exc:
                if unavailable(exc) is None:
                    raise
                # disk full (or the database refuses writes): a read must not fail for its
                # counter; count here and write the hits when writes work again
                log.warning("request counter not written (%s); counting in memory", exc)
                known = {window - WINDOW: 0, window: 0, **known}
                with self._lock:  # and try again in FLUSH_EVERY, not on every request
                    self._known[key.id] = (now, known)
        with self._lock:
            current = known.get(window, 0) + self._pending.get((key.id, window), 0)
            previous = known.get(window - WINDOW, 0) + self._pending.get(
                (key.id, window - WINDOW), 0
            )
        _check(limit, previous, current, now - window)

    def _flush(self, key_id: str, window: int, now: float) -> dict[int, int]:
        with self._lock:
            pending = {
                w: self._pending.pop((k, w))
                for (k, w) in list(self._pending)
                if k == key_id and w >= window - WINDOW
            }
            for slot in [s for s in self._pending if s[1] < window - WINDOW]:
                del self._pending[slot]  # too old to matter
        try:
            with self.db.write() as conn:
                known = {w: _hit(conn, key_id, "requests", w, n) for w, n in pending.items()}
                if window - WINDOW not in known:
                    known[window - WINDOW] = _hits(conn, key_id, window - WINDOW)
                if window not in known:
                    known[window] = _hits(conn, key_id, window)
        except BaseException:
            with self._lock:  # not written: count them again next time
                for w, n in pending.items():
                    self._pending[(key_id, w)] = self._pending.get((key_id, w), 0) + n
            raise
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key_id] = (now, known)
        return known


def count_request(db: Database, key: ApiKey, settings: Any, now: float | None = None) -> None:
    """Count one request for ``key`` straight in the database (one write per request).

    The API uses :class:`RequestCounter` (same limit, far fewer writes); this stays for
    callers without one.
    """
    limit = effective(key.requests_per_minute, settings.requests_per_minute)
    if limit <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW) * WINDOW
    with db.write() as conn:
        current = _hit(conn, key.id, "requests", window)
        previous = _hits(conn, key.id, window - WINDOW)
    _check(limit, previous, current, now - window)


def _check(limit: int, previous: int, current: int, elapsed: float) -> None:
    estimate = previous * (WINDOW - elapsed) / WINDOW + current
    if estimate <= limit:
        return
    if current > limit or previous == 0:
        wait = WINDOW - elapsed
    else:  # the previous minute's weight falls linearly: wait until it has fallen enough
        wait = (WINDOW - elapsed) - (limit - current) * WINDOW / previous
    raise RateLimited(
        f"rate limit: at most {limit} requests per minute for this key; "
        f"retry after {math.ceil(max(wait, 1))} s",
        retry_after=max(wait, 1.0),
    )


def _hits(conn: Connection, key_id: str, window: int) -> int:
    value = conn.execute(
        select(rate_windows.c.hits).where(
            rate_windows.c.key_id == key_id,
            rate_windows.c.bucket == "requests",
            rate_windows.c.window_start == window,
        )
    ).scalar()
    return int(value or 0)


def _hit(conn: Connection, key_id: str, bucket: str, window: int, n: int = 1) -> int:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(rate_windows)
        .values(key_id=key_id, bucket=bucket, window_start=window, hits=n)
        .on_conflict_do_update(
            index_elements=["key_id", "bucket", "window_start"],
            set_={"hits": rate_windows.c.hits + n},
        )
        .returning(rate_windows.c.hits)
    )
    return int(conn.execute(stmt).scalar_one())


def check_submit(conn: Connection, key_row: Any, settings: Any, now: float) -> None:
    """In the submit transaction: submit rate (429), service queue (503), key's jobs (429)."""
    key_id = key_row["id"]
    per_minute = effective(key_row.get("submits_per_minute"), settings.submits_per_minute)
    if per_minute > 0:
        recent = conn.execute(
            select(func.count(), func.min(jobs.c.created_at)).where(
                jobs.c.key_id == key_id, jobs.c.created_at > now - WINDOW
            )
        ).one()
        if recent[0] >= per_minute:
            wait = max(1.0, recent[1] + WINDOW - now)
            raise RateLimited(
                f"rate limit: at most {per_minute} job submissions per minute for this key; "
                f"retry after {math.ceil(wait)} s",
                retry_after=wait,
            )
    depth = settings.max_queue_depth
    if depth > 0:
        queued = conn.execute(select(func.count()).where(jobs.c.status == "queued")).scalar()
        if (queued or 0) >= depth:
            raise ServiceBusy(
                f"the service is busy: {queued} jobs are queued (the limit is {depth}); "
                "retry later",
                retry_after=BUSY_RETRY_AFTER,
            )
    active_limit = effective(key_row.get("max_active_jobs"), settings.max_active_jobs)
    if active_limit > 0:
        active = conn.execute(
            select(func.count()).where(
                jobs.c.key_id == key_id, jobs.c.status.in_(("queued", "running"))
            )
        ).scalar()
        if (active or 0) >= active_limit:
            raise RateLimited(
                f"this key already has {active} jobs queued or running (the limit is "
                f"{active_limit}); wait for one to finish",
                retry_after=ACTIVE_RETRY_AFTER,
            )


def forget_old_windows(conn: Connection, now: float) -> int:
    """Drop counters that can no longer matter (older than two minutes)."""
    result = conn.execute(
        rate_windows.delete().where(rate_windows.c.window_start < now - 2 * WINDOW)
    )
    return result.rowcount or 0
