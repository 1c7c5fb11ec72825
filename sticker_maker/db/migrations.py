"""Schema migrations: an append-only list. Never edit a released step; add a new one.

Each step is ``(version, description, function(connection))``. ``upgrade`` runs
every step not yet recorded in ``schema_version``, in version order, each in
its own transaction.

Step 1 creates its tables from the *current* ``schema.py``, so on a fresh database
later columns, indexes and tables may already exist when a later step runs: steps
add them with :func:`add_column`, ``create(checkfirst=True)`` and
``CREATE INDEX IF NOT EXISTS`` (all portable between SQLite and PostgreSQL).
"""

from __future__ import annotations

import base64
import secrets
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


def add_column(conn: Connection, table: str, name: str, ddl_type: str) -> None:
    """``ALTER TABLE … ADD COLUMN`` unless the column exists (portable; see the module doc)."""
    if name not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl_type}"))


def _0002_accounts(conn: Connection) -> None:
    add_column(conn, "api_keys", "balance", "FLOAT NOT NULL DEFAULT 0")
    conn.execute(
        text(
            "UPDATE api_keys SET balance = COALESCE("
            "(SELECT SUM(amount) FROM ledger WHERE ledger.key_id = api_keys.id), 0)"
        )
    )
    add_column(conn, "api_keys", "webhook_secret", "VARCHAR(64)")
    add_column(conn, "api_keys", "requests_per_minute", "INTEGER")
    add_column(conn, "api_keys", "submits_per_minute", "INTEGER")
    add_column(conn, "api_keys", "max_active_jobs", "INTEGER")
    add_column(conn, "jobs", "price_per_second", "FLOAT")
    add_column(conn, "jobs", "webhook", "TEXT")
    add_column(conn, "ledger", "note", "VARCHAR(200)")
    conn.execute(
        text("CREATE UNIQUE INDEX IF NOT EXISTS ux_ledger_job_kind ON ledger (job_id, kind)")
    )
    for table in (
        schema.files,
        schema.rate_windows,
        schema.idempotency_keys,
        schema.webhook_deliveries,
    ):
        table.create(conn, checkfirst=True)
    # keys made before this step get their webhook signing secret now
    for (key_id,) in conn.execute(text("SELECT id FROM api_keys WHERE webhook_secret IS NULL")):
        conn.execute(
            text("UPDATE api_keys SET webhook_secret = :s WHERE id = :id"),
            {"s": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(), "id": key_id},
        )


def _0003_scale_out(conn: Connection) -> None:
    schema.workers.create(conn, checkfirst=True)
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_jobs_status_heartbeat ON jobs (status, heartbeat_at)")
    )


def _0007_batching(conn: Connection) -> None:
    add_column(conn, "jobs", "billed_time", "FLOAT")
    add_column(conn, "jobs", "batch_key", "VARCHAR(400)")


def _0014_replicate(conn: Connection) -> None:
    add_column(conn, "jobs", "api", "TEXT")
    schema.uploads.create(conn, checkfirst=True)


def _0016_safety(conn: Connection) -> None:
    add_column(conn, "api_keys", "safety", "VARCHAR(16)")
    add_column(conn, "jobs", "safety", "VARCHAR(16)")
    add_column(conn, "jobs", "error_code", "VARCHAR(40)")


def _0017_speeds(conn: Connection) -> None:
    schema.speeds.create(conn, checkfirst=True)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "keys, jobs, ledger", _0001_initial),
    (2, "accounts: credits, limits, files, idempotency, webhooks", _0002_accounts),
    (3, "scale-out: worker registry, lease index", _0003_scale_out),
    (7, "batching: jobs.batch_key, jobs.billed_time (share of a shared call)", _0007_batching),
    (14, "Replicate API: jobs.api (how it was asked), uploads (POST /v1/files)", _0014_replicate),
    (16, "content safety: api_keys.safety, jobs.safety, jobs.error_code", _0016_safety),
    (17, "first use: speeds (measured seconds per unit of work, for reservations)", _0017_speeds),
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
