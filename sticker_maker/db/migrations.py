"""Schema migrations: an append-only list. Never edit a released step; add a new one.

Each step is ``(version, description, function(connection))``. ``upgrade`` runs
every step not yet recorded in ``schema_version``, in version order, each in
its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)

from sticker_maker.db import schema

_version_meta = MetaData()
schema_version = Table(
    "schema_version",
    _version_meta,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)


def _0001_initial(conn: Connection) -> None:
    for table in (schema.api_keys, schema.jobs, schema.ledger):
        table.create(conn)


def _0003_scale_out(conn: Connection) -> None:
    # Step 1 builds tables from the current schema.py, so on a fresh database these
    # may exist already: create only what is missing.
    schema.workers.create(conn, checkfirst=True)
    if "ix_jobs_status_heartbeat" not in {i["name"] for i in inspect(conn).get_indexes("jobs")}:
        conn.execute(text("CREATE INDEX ix_jobs_status_heartbeat ON jobs (status, heartbeat_at)"))


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "keys, jobs, ledger", _0001_initial),
    (3, "scale-out: worker registry, lease index", _0003_scale_out),
]


def applied_versions(conn: Connection) -> set[int]:
    """Versions already applied (a set: a step merged late with a lower number still runs)."""
    schema_version.create(conn, checkfirst=True)
    return {int(v) for v in conn.execute(select(schema_version.c.version)).scalars()}


def applied(conn: Connection) -> list[tuple[int, str, float]]:
    """(version, description, applied_at) of every applied step, in order."""
    schema_version.create(conn, checkfirst=True)
    rows = conn.execute(
        select(
            schema_version.c.version, schema_version.c.description, schema_version.c.applied_at
        ).order_by(schema_version.c.version)
    )
    return [(int(v), str(d), float(t)) for v, d, t in rows]


def pending(conn: Connection) -> list[tuple[int, str]]:
    done = applied_versions(conn)
    return [(v, d) for v, d, _ in MIGRATIONS if v not in done]
