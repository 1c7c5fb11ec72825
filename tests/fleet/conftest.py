"""Fixtures for the fleet tests: PostgreSQL databases (shared server or a private cluster)."""

from __future__ import annotations

from scale.conftest import pg_server, pg_url  # noqa: F401  (fixtures)
