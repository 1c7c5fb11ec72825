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
    # migration 2: the ledger's sum, kept in step with every ledger row (same transaction);
    # Standard Webhooks signing secret ("whsec_…"); per-key limit overrides
    Column("balance", Float, nullable=False, server_default="0"),
    Column("webhook_secret", String(64)),
    Column("requests_per_minute", Integer),  # NULL = the service default
    Column("submits_per_minute", Integer),
    Column("max_active_jobs", Integer),
    # migration 16: the key's content safety level (NULL = the service default)
    Column("safety", String(16)),
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
    # migration 2: credits per GPU-second fixed at submit; webhook config (JSON)
    Column("price_per_second", Float),
    Column("webhook", Text),
    # migration 7: seconds billed when the job shared a model call with others (its share
    # of the call); NULL = billed its predict_time
    Column("billed_time", Float),
    # migration 7: jobs with equal keys can share one model call (params.batch_key_text)
    Column("batch_key", String(400)),
    # migration 16: the safety level the job was admitted at (its image check follows it);
    # the failure's code (``content_blocked``, ``model_unavailable`` …) when it has one
    Column("safety", String(16)),
    Column("error_code", String(40)),
    # migration 14: how another API asked for the job (JSON: the Replicate-compatible
    # API's version, model and input as sent), so it is shown back as it was asked
    Column("api", Text),
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
    Column("note", String(200)),  # migration 2
    Index("ix_ledger_key", "key_id"),
    # migration 2: one reserve, one settle, one refund per job, whatever retries or races
    Index("ux_ledger_job_kind", "job_id", "kind", unique=True),
)

# -- migration 2: files, rate limits, idempotency, webhook outbox ---------------------

files = Table(
    "files",
    metadata,
    Column("name", String(100), primary_key=True),  # the storage name (unguessable)
    Column("key_id", String(32), nullable=False),  # owner
    Column("job_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_files_job", "job_id"),
)

rate_windows = Table(
    "rate_windows",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("bucket", String(16), primary_key=True),
    Column("window_start", Integer, primary_key=True),  # epoch seconds, multiple of 60
    Column("hits", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("idem_key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", String(36)),
    Column("response_status", Integer),  # NULL while the first request is in flight
    Column("response_body", Text),
    Column("created_at", Float, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header, stable across retries
    Column("job_id", String(36), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("event", String(16), nullable=False),  # start | progress | completed
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),  # the exact body sent on every attempt
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("locked_until", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Index("ix_webhook_due", "status", "next_attempt_at"),
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


# -- migration 14: files uploaded for use as inputs (POST /v1/files) ---------------------

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=False),  # owner
    Column("name", String(100), nullable=False),  # the storage name (unguessable)
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("metadata", Text, nullable=False),  # JSON object
    Column("created_at", Float, nullable=False),
    Index("ix_uploads_key_created", "key_id", "created_at"),
    Index("ix_uploads_created", "created_at"),
)


# -- migration 17: this service's measured speed (fair credit reservations) ---------------

#: seconds per unit of work measured on finished jobs, per job kind and preset
#: (``accounts.speed``): what a reservation is estimated from once a job has run
speeds = Table(
    "speeds",
    metadata,
    Column("name", String(240), primary_key=True),  # "<kind>:<preset>"
    Column("seconds_per_unit", Float, nullable=False),
    Column("jobs", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)
