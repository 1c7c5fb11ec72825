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

import math
import time
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from sticker_maker.accounts.keys import ApiKey
from sticker_maker.db import Database, jobs, rate_windows
from sticker_maker.errors import RateLimited, ServiceBusy

WINDOW = 60
#: Retry-After for "too many jobs in flight" and "queue full" (seconds)
ACTIVE_RETRY_AFTER = 5.0
BUSY_RETRY_AFTER = 10.0


def effective(override: int | None, default: int) -> int:
    return default if override is None else int(override)


def count_request(db: Database, key: ApiKey, settings: Any, now: float | None = None) -> None:
    """Count one request for ``key``; :class:`RateLimited` (429) when over its limit."""
    limit = effective(key.requests_per_minute, settings.requests_per_minute)
    if limit <= 0:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW) * WINDOW
    with db.write() as conn:
        current = _hit(conn, key.id, "requests", window)
        previous = conn.execute(
            select(rate_windows.c.hits).where(
                rate_windows.c.key_id == key.id,
                rate_windows.c.bucket == "requests",
                rate_windows.c.window_start == window - WINDOW,
            )
        ).scalar()
    previous = int(previous or 0)
    elapsed = now - window
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


def _hit(conn: Connection, key_id: str, bucket: str, window: int) -> int:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(rate_windows)
        .values(key_id=key_id, bucket=bucket, window_start=window, hits=1)
        .on_conflict_do_update(
            index_elements=["key_id", "bucket", "window_start"],
            set_={"hits": rate_windows.c.hits + 1},
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
