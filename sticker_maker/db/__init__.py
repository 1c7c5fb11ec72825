"""State: one SQLAlchemy database (SQLite embedded default, PostgreSQL for many machines)."""

from sticker_maker.db.database import Database
from sticker_maker.db.schema import (
    api_keys,
    files,
    idempotency_keys,
    jobs,
    ledger,
    metadata,
    rate_windows,
    speeds,
    uploads,
    webhook_deliveries,
    workers,
)

__all__ = [
    "Database",
    "api_keys",
    "files",
    "idempotency_keys",
    "jobs",
    "ledger",
    "metadata",
    "rate_windows",
    "speeds",
    "uploads",
    "webhook_deliveries",
    "workers",
]
