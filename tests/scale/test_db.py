"""Schema migrations on SQLite and PostgreSQL: idempotent, safe from many processes at once."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import delete, func, inspect, select, text

from scale.cluster import REPO
from sticker_maker.db import Database
from sticker_maker.db import migrations as m


def _versions(db: Database) -> list[int]:
    with db.read() as conn:
        return [int(v) for v in conn.execute(select(m.schema_version.c.version)).scalars()]


def test_upgrade_applies_every_step_once(any_db_url: str) -> None:
    db = Database(any_db_url)
    try:
        applied = db.upgrade()
        assert [v for v, _ in applied] == [v for v, _, _ in m.MIGRATIONS]
        assert db.upgrade() == []
        done, pending = db.migration_status()
        assert pending == [] and [v for v, _, _ in done] == sorted(v for v, _, _ in m.MIGRATIONS)
        with db.read() as conn:
            insp = inspect(conn)
            assert "workers" in insp.get_table_names()
            assert "ix_jobs_status_heartbeat" in {i["name"] for i in insp.get_indexes("jobs")}
    finally:
        db.dispose()


def test_step_3_upgrades_a_database_made_before_it(any_db_url: str) -> None:
    """A database from before step 3 (no workers table, no lease index) gets both."""
    db = Database(any_db_url)
    try:
        db.upgrade()
        with db.write() as conn:  # back to how step 2 left it
            conn.execute(text("DROP TABLE workers"))
            conn.execute(text("DROP INDEX ix_jobs_status_heartbeat"))
            conn.execute(delete(m.schema_version).where(m.schema_version.c.version == 3))
        assert [v for v, _ in db.upgrade()] == [3]
        with db.read() as conn:
            insp = inspect(conn)
            assert "workers" in insp.get_table_names()
            assert "ix_jobs_status_heartbeat" in {i["name"] for i in insp.get_indexes("jobs")}
    finally:
        db.dispose()


def _cli(url: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "sticker_maker", "db", *args, "--database", url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=120,
    ).stdout


def test_concurrent_upgrade_from_many_processes(any_db_url: str) -> None:
    """Four `sticker-maker db upgrade` at once on an empty database: all succeed, each step once.

    `db status` before and after names what is pending, then what is applied.
    """
    before = _cli(any_db_url, "status")
    assert "PENDING" in before and "db upgrade" in before
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sticker_maker", "db", "upgrade", "--database", any_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, errors) in zip(procs, results, strict=True):
        assert proc.returncode == 0, errors
        assert "up to date" in out
    applied_lines = sum(out.count("applied ") for out, _ in results)
    assert applied_lines == len(m.MIGRATIONS), [out for out, _ in results]
    db = Database(any_db_url)
    try:
        assert sorted(_versions(db)) == sorted(v for v, _, _ in m.MIGRATIONS)
        with db.read() as conn:
            count = conn.execute(select(func.count()).select_from(m.schema_version)).scalar()
        assert count == len(m.MIGRATIONS)
    finally:
        db.dispose()
    after = _cli(any_db_url, "status")
    assert "PENDING" not in after
    for version, description, _ in m.MIGRATIONS:
        assert f"applied  {version:>3}  {description}" in after
    assert "jobs: none" in after
