"""Faults a process waits out instead of failing: a full disk, an unreachable database.

:func:`unavailable` looks at an exception (and the exceptions it wraps) and says
whether it is one of those; the API answers it with 503 and ``Retry-After``
(``api/errors.py``), the rate counter keeps counting in memory, and a worker hands
its job back or retries recording it (``worker/record.py``). Anything else is a
real error and is not hidden.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from sticker_maker.errors import Unavailable

#: errno values that mean "no space left": a full disk or an exhausted quota
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: SQLite's result code for "database or disk is full"
SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE class 53: insufficient resources (53100 disk full, 53200 out of memory,
#: 53300 too many connections)
PG_INSUFFICIENT_RESOURCES = "53"
#: Retry-After (seconds) for each kind
DISK_FULL_RETRY_AFTER = 30.0
DATABASE_RETRY_AFTER = 5.0


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend([getattr(item, "orig", None), item.__cause__, item.__context__])


def is_disk_full(exc: BaseException) -> bool:
    """A write failed for lack of space (OSError ENOSPC/EDQUOT, SQLite FULL, PostgreSQL 53100)."""
    for item in _chain(exc):
        if isinstance(item, OSError) and item.errno in DISK_FULL_ERRNOS:
            return True
        if getattr(item, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(item, "sqlstate", None) == "53100":
            return True
        if "database or disk is full" in str(item):
            return True
    return False


def is_database_unreachable(exc: BaseException) -> bool:
    """The database cannot be reached or is shutting down (not: a bad statement)."""
    from sqlalchemy import exc as sa

    for item in _chain(exc):
        if isinstance(item, sa.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, sa.TimeoutError | sa.DisconnectionError):
            return True  # the pool's wait for a connection ran out
        module = type(item).__module__
        if module.startswith("psycopg") and type(item).__name__ in (
            "OperationalError",
            "InterfaceError",
            "AdminShutdown",
            "CannotConnectNow",
            "ConnectionTimeout",
        ):
            return True
        if str(getattr(item, "sqlstate", "") or "").startswith(PG_INSUFFICIENT_RESOURCES):
            return True
        if module == "sqlite3" and "database is locked" in str(item):
            return True
    return False


def is_storage_unreachable(exc: BaseException) -> bool:
    """An object store (S3) or network mount that does not answer (not: a refused request)."""
    for item in _chain(exc):
        if isinstance(item, ConnectionError | TimeoutError):
            return True
        if type(item).__module__.startswith(("botocore", "urllib3")) and any(
            word in type(item).__name__
            for word in ("Connect", "Timeout", "ConnectionClosed", "ProtocolError")
        ):
            return True
    return False


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 to answer for ``exc``, or None when it is not a fault to wait out."""
    if is_disk_full(exc):
        return Unavailable(
            "the service cannot store anything right now (its disk is full); reading jobs "
            "and files still works. Retry later.",
            DISK_FULL_RETRY_AFTER,
            reason="disk_full",
        )
    if is_database_unreachable(exc):
        return Unavailable(
            "the service's database is unreachable right now. Retry in a few seconds.",
            DATABASE_RETRY_AFTER,
            reason="database_unreachable",
        )
    return None


__all__ = ["is_database_unreachable", "is_disk_full", "is_storage_unreachable", "unavailable"]
