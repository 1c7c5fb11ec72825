"""Schema migrations: an append-only list. Never edit a released step; add a new one.

Each step is ``(version, description, function(connection))``. ``upgrade`` runs
every step not yet recorded in ``schema_version``, in version order, each in
its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table, select

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


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "keys, jobs, ledger", _0001_initial),
]


def applied_versions(conn: Connection) -> set[int]:
    """Versions already applied (a set: a step merged late with a lower number still runs)."""
    schema_version.create(conn, checkfirst=True)
    return {int(v) for v in conn.execute(select(schema_version.c.version)).scalars()}


def pending(conn: Connection) -> list[tuple[int, str]]:
    done = applied_versions(conn)
    return [(v, d) for v, d, _ in MIGRATIONS if v not in done]
