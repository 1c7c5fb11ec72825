"""Schema migrations: an append-only list. Never edit a released step; add a new one.

Each step is ``(version, description, function(connection))``. ``upgrade`` runs
the steps newer than the database's recorded version, each in its own
transaction, and records it in ``schema_version``.
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


def current_version(conn: Connection) -> int:
    schema_version.create(conn, checkfirst=True)
    value = conn.execute(
        select(schema_version.c.version).order_by(schema_version.c.version.desc()).limit(1)
    ).scalar()
    return int(value or 0)


def pending(conn: Connection) -> list[tuple[int, str]]:
    version = current_version(conn)
    return [(v, d) for v, d, _ in MIGRATIONS if v > version]
