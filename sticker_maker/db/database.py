"""The database handle: engine creation, transactions, migrations, wake-ups.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts
with ``BEGIN IMMEDIATE`` so concurrent writers queue for the lock instead of
failing half-way. Reads use a plain deferred transaction so polls never wait on
writers.

PostgreSQL (``postgresql://user:pass@host/db``) goes through psycopg 3 with a
small connection pool per process (``pool_size``, as many again on overflow,
checked before use). :meth:`Database.notify` and :meth:`Database.listen` carry
"a job was queued" between machines so idle workers sleep instead of polling.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from sticker_maker.db import migrations

#: the PostgreSQL LISTEN/NOTIFY channel for "a job is waiting"
JOBS_CHANNEL = "sticker_maker_jobs"
#: the channel for "a job finished" (payload: its id)
DONE_CHANNEL = "sticker_maker_done"
#: the advisory lock that serialises ``upgrade`` across processes and machines
_MIGRATION_LOCK = zlib.crc32(b"sticker-maker schema migrations")


def postgres_dsn(url: str) -> str:
    """A libpq connection string for ``url`` (SQLAlchemy's driver suffix removed)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """One engine plus ``read()`` / ``write()`` transaction helpers."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = url
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        self.is_sqlite = backend == "sqlite"
        self.is_postgres = backend in ("postgresql", "postgres")
        #: SQLite has one writer at a time; threads of this process queue here for it
        #: (woken at once) instead of in SQLite's busy handler, which sleeps and polls
        self._write_lock = threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url,
                echo=echo,
                poolclass=QueuePool,
                pool_size=8,
                max_overflow=16,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        elif self.is_postgres:
            if parsed.drivername in ("postgresql", "postgres"):
                parsed = parsed.set(drivername="postgresql+psycopg")
            self.engine = create_engine(
                parsed,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=60,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"application_name": "sticker-maker", "connect_timeout": 10},
            )
        else:
            raise ValueError(
                f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
            )

    @property
    def backend(self) -> str:
        return "postgresql" if self.is_postgres else "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    # -- migrations ---------------------------------------------------------------

    def upgrade(self) -> list[tuple[int, str]]:
        """Apply pending migrations; returns what was applied.

        Safe to run from many processes at once: each step's transaction first
        takes the migration lock (a PostgreSQL advisory lock, SQLite's write lock
        through ``BEGIN IMMEDIATE``) and re-reads what is applied, so each step
        runs exactly once and the others find it done.
        """
        applied = []
        for version, description, step in migrations.MIGRATIONS:
            with self.write() as conn:
                self._lock_migrations(conn)
                if version in migrations.applied_versions(conn):
                    continue
                step(conn)
                conn.execute(
                    insert(migrations.schema_version).values(
                        version=version, description=description, applied_at=time.time()
                    )
                )
                applied.append((version, description))
        return applied

    def migration_status(self) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
        """(applied steps with their times, pending steps)."""
        with self.write() as conn:
            self._lock_migrations(conn)
            return migrations.applied(conn), migrations.pending(conn)

    def _lock_migrations(self, conn: Connection) -> None:
        if self.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})

    # -- wake-ups across processes (PostgreSQL) ---------------------------------------

    def notify(self, conn: Connection, channel: str = JOBS_CHANNEL, payload: str = "") -> None:
        """Queue a NOTIFY in ``conn``'s transaction (sent on commit; nothing on SQLite)."""
        if self.is_postgres:
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})

    def listen(self, channel: str = JOBS_CHANNEL) -> Any:
        """A dedicated autocommit psycopg connection LISTENing on ``channel``.

        Wait on it with ``conn.notifies(timeout=…, stop_after=1)``; close it when done.
        """
        import psycopg

        conn = psycopg.connect(postgres_dsn(self.url), autocommit=True, connect_timeout=10)
        conn.execute(f"LISTEN {channel}")
        return conn

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling is off).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
