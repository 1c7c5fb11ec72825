"""The database handle: engine creation, transactions, migrations.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts
with ``BEGIN IMMEDIATE`` so concurrent writers queue for the lock instead of
failing half-way. Reads use a plain deferred transaction so polls never wait on
writers. PostgreSQL uses the driver's defaults.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from sticker_maker.db import migrations


class Database:
    """One engine plus ``read()`` / ``write()`` transaction helpers."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
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
        else:
            if parsed.drivername == "postgresql":
                url = str(parsed.set(drivername="postgresql+psycopg"))
            self.engine = create_engine(
                url, echo=echo, pool_size=8, max_overflow=16, pool_pre_ping=True
            )

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

    def upgrade(self) -> list[tuple[int, str]]:
        """Apply pending migrations; returns what was applied."""
        applied = []
        for version, description, step in migrations.MIGRATIONS:
            with self.write() as conn:
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

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling is off).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
