"""Which errors are faults to wait out, on real errors (no root needed): a SQLite database
that is full (``max_page_count``), a full folder's ENOSPC, a PostgreSQL port that refuses
connections; and the rate counter keeping reads working when its write fails."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from scale.cluster import free_port
from sqlalchemy import text

from sticker_maker.accounts import KeyStore
from sticker_maker.accounts.limits import RequestCounter
from sticker_maker.config import Settings
from sticker_maker.db import Database
from sticker_maker.errors import RateLimited
from sticker_maker.faults import (
    is_database_unreachable,
    is_disk_full,
    is_storage_unreachable,
    unavailable,
)


def full_sqlite(tmp_path: Path) -> Database:
    """A migrated SQLite database that cannot grow by another page (SQLITE_FULL)."""
    db = Database(f"sqlite:///{tmp_path / 'full.db'}")
    db.upgrade()
    with db.write() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar()
        conn.execute(text(f"PRAGMA max_page_count = {pages}"))
    return db


def test_real_errors_are_classified(tmp_path: Path) -> None:
    db = full_sqlite(tmp_path)
    with pytest.raises(Exception) as full, db.write() as conn:
        conn.execute(text("CREATE TABLE filler (x BLOB)"))
        conn.execute(text("INSERT INTO filler VALUES (zeroblob(1000000))"))
    assert is_disk_full(full.value) and not is_database_unreachable(full.value)
    assert unavailable(full.value).retry_after == 30  # type: ignore[union-attr]

    refused = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(Exception) as away, refused.read() as conn:
        conn.execute(text("SELECT 1"))
    assert is_database_unreachable(away.value) and not is_disk_full(away.value)
    assert unavailable(away.value).reason == "database_unreachable"  # type: ignore[union-attr]

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_storage_unreachable(ConnectionRefusedError())
    # a real bug is not a fault to wait out
    with pytest.raises(Exception) as bad, db.read() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert unavailable(bad.value) is None
    assert unavailable(ValueError("x")) is None
    db.dispose()
    refused.dispose()


def test_the_rate_counter_counts_in_memory_while_the_database_is_full(tmp_path: Path) -> None:
    from sqlalchemy import event

    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade()
    key = KeyStore(db).create(credits=1, requests_per_minute=5).key
    with db.write() as conn:
        conn.execute(text("CREATE TABLE filler (x BLOB)"))
    with db.read() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar()
    full = [True]

    @event.listens_for(db.engine, "checkout")
    def _cap(dbapi_conn, *_: object) -> None:  # type: ignore[no-untyped-def]
        cap = pages if full[0] else 1073741823  # max_page_count is per connection
        dbapi_conn.execute(f"PRAGMA max_page_count = {cap}")

    for size in (4096, 512, 64, 1):  # fill the free room of every page
        for _ in range(10_000):
            try:
                with db.write() as conn:
                    conn.execute(text(f"INSERT INTO filler VALUES (zeroblob({size}))"))
            except Exception as exc:
                assert is_disk_full(exc), exc
                break
    for i in range(100_000):  # and of the counters' own pages (other keys' old minutes)
        try:
            with db.write() as conn:
                conn.execute(
                    text(f"INSERT INTO rate_windows VALUES ('other{i}', 'requests', 0, 1)")
                )
        except Exception as exc:
            assert is_disk_full(exc), exc
            break
    counter = RequestCounter(db)
    settings = Settings.load(tmp_path)
    now = 1_000_020.0
    for i in range(5):  # each due write fails (no room); the requests still pass
        counter.count(key, settings, now + i * 0.3)
    with pytest.raises(RateLimited):  # the limit still holds, counted in memory
        counter.count(key, settings, now + 1.6)
    with db.read() as conn:
        mine = "SELECT count(*) FROM rate_windows WHERE key_id = :k"
        assert conn.execute(text(mine), {"k": key.id}).scalar() == 0
    full[0] = False
    with pytest.raises(RateLimited):
        counter.count(key, settings, now + 2.0)  # room again: written, still over the limit
    with db.read() as conn:
        hits = conn.execute(
            text("SELECT sum(hits) FROM rate_windows WHERE key_id = :k"), {"k": key.id}
        ).scalar()
    assert hits == 7  # every request counted, none lost while the writes failed
    db.dispose()
