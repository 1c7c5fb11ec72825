"""The PostgreSQL server the tests use: one variable, a reason a person can act on.

``$STICKER_MAKER_TEST_POSTGRES`` names a database on the server (default
``postgresql://postgres@127.0.0.1:5432/test``; ``.ci/run`` creates it). Tests create a
throw-away database per test on that server and drop it afterwards.

Where the server cannot be used, the tests that need it skip, saying why (driver missing,
server not reachable, login refused, database missing) — except under ``CI=true``, where
they fail: a CI run that silently skipped its PostgreSQL tests would prove nothing.
"""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest

ENV = "STICKER_MAKER_TEST_POSTGRES"
DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get(ENV, DEFAULT)


def _libpq(url: str) -> str:
    """The URL as libpq reads it (SQLAlchemy's ``postgresql+psycopg://`` works too)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def problem(url: str | None = None) -> str | None:
    """Why the test PostgreSQL cannot be used, or None if it can."""
    url = url or server_url()
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        psycopg.connect(_libpq(url), connect_timeout=3).close()
    except psycopg.Error as exc:
        detail = str(exc).split("FATAL:", 1)[-1].strip()
        if "does not exist" in detail and "database" in detail:
            return f"{detail} on {url} (create it: createdb -h HOST -U USER NAME, or set {ENV})"
        if "authentication" in detail or "role" in detail or "password" in detail:
            return f"login to PostgreSQL at {url} failed: {detail} (fix {ENV})"
        return f"PostgreSQL at {url} is not reachable: {detail} (start it or set {ENV})"
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unusable(reason: str) -> None:
    """Skip the test (fail it under ``CI=true``) because PostgreSQL cannot be used."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require() -> str:
    """The test server's URL; skips (fails in CI) with the reason when it cannot be used."""
    reason = problem()
    if reason is not None:
        unusable(reason)
    return server_url()


def ensure_database(url: str | None = None) -> bool:
    """Create the database ``url`` names if the server lacks it (``.ci/run`` calls this).

    Returns whether it created one; any other problem is left for the tests to report."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = url or server_url()
    try:
        psycopg.connect(_libpq(url), connect_timeout=3).close()
        return False
    except psycopg.OperationalError as exc:
        name = make_url(url).database
        if f'database "{name}" does not exist' not in str(exc):
            return False
    with _maintenance(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def _maintenance(url: str):  # type: ignore[no-untyped-def]
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(_libpq(url)).set(database="postgres")
    return psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True)


def create_database(url: str, label: str = "t") -> str:
    """Create a uniquely named database on ``url``'s server; returns its URL."""
    from sqlalchemy.engine import make_url

    name = f"sm_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _maintenance(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with contextlib.suppress(Exception), _maintenance(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
