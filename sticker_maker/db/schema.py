"""Tables. Times are float seconds since the epoch (UTC), portable across both databases.

Change the schema only by appending a migration in ``migrations.py``; this file
describes the current shape for queries.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # public part of the key, e.g. "k3Jd9sA2"
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the whole key
    Column("label", String(200), nullable=False, server_default=""),
    Column("scope", String(16), nullable=False, server_default="user"),  # user | admin
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("kind", String(16), nullable=False, server_default="generate"),
    Column("preset", String(200), nullable=False),
    Column("input", Text, nullable=False),  # JSON of JobInput
    Column("status", String(16), nullable=False),  # queued|running|succeeded|failed|canceled
    Column("output", Text),  # JSON list of output descriptors
    Column("error", Text),
    Column("logs", Text, nullable=False, server_default=""),
    Column("progress_step", Integer, nullable=False, server_default="0"),
    Column("progress_total", Integer, nullable=False, server_default="0"),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("worker_id", String(64)),
    Column("heartbeat_at", Float),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("completed_at", Float),
    Column("predict_time", Float),
    Index("ix_jobs_status_created", "status", "created_at"),
    Index("ix_jobs_key_created", "key_id", "created_at"),
    Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),  # migration 3: the reaper
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(32), ForeignKey("api_keys.id"), nullable=False),
    Column("job_id", String(36)),
    Column("kind", String(16), nullable=False),  # grant | reserve | settle | refund
    Column("amount", Float, nullable=False),  # credits; negative = spent
    Column("created_at", Float, nullable=False),
    Index("ix_ledger_key", "key_id"),
)

# -- migration 3: scale-out --------------------------------------------------------

#: one row per worker process, beaten every heartbeat (metrics and ``/metrics``)
workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),  # host-pid-random
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # starting | idle | busy | draining
    Column("job_id", String(36)),  # the job it runs now
    Column("jobs_done", Integer, nullable=False, server_default="0"),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Index("ix_workers_heartbeat", "heartbeat_at"),
)
