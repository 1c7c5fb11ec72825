"""Migration 2 on a database made by step 1 before it existed; SQL that runs on PostgreSQL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pg
import pytest
from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, insert

from accounts.helpers import Client, bearer
from sticker_maker.db import Database
from sticker_maker.db.migrations import MIGRATIONS, schema_version


def _v1_tables(meta: MetaData) -> list[Table]:
    """The tables exactly as step 1 created them before migration 2 existed."""
    return [
        Table(
            "api_keys",
            meta,
            Column("id", String(32), primary_key=True),
            Column("secret_hash", String(64), nullable=False),
            Column("label", String(200), nullable=False, server_default=""),
            Column("scope", String(16), nullable=False, server_default="user"),
            Column("created_at", Float, nullable=False),
            Column("last_used_at", Float),
            Column("revoked_at", Float),
        ),
        Table(
            "jobs",
            meta,
            Column("id", String(36), primary_key=True),
            Column("key_id", String(32), nullable=False),
            Column("kind", String(16), nullable=False, server_default="generate"),
            Column("preset", String(200), nullable=False),
            Column("input", Text, nullable=False),
            Column("status", String(16), nullable=False),
            Column("output", Text),
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
        ),
        Table(
            "ledger",
            meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("key_id", String(32), nullable=False),
            Column("job_id", String(36)),
            Column("kind", String(16), nullable=False),
            Column("amount", Float, nullable=False),
            Column("created_at", Float, nullable=False),
        ),
    ]


def test_migration_2_upgrades_a_step_1_database(make_client, tmp_path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    db = Database(f"sqlite:///{home / 'sticker-maker.db'}")
    secret = "sm_OldKey01_" + "s" * 43
    with db.write() as conn:
        for table in _v1_tables(MetaData()):
            table.create(conn)
        schema_version.create(conn)
        conn.execute(insert(schema_version).values(version=1, description="v1", applied_at=0))
        conn.exec_driver_sql(
            "INSERT INTO api_keys (id, secret_hash, label, scope, created_at) VALUES (?,?,?,?,?)",
            ("OldKey01", hashlib.sha256(secret.encode()).hexdigest(), "old", "user", time.time()),
        )
        conn.exec_driver_sql(
            "INSERT INTO ledger (key_id, kind, amount, created_at) "
            "VALUES ('OldKey01', 'grant', 100, 0)"
        )
    assert [v for v, _ in db.upgrade()] == [v for v, _, _ in MIGRATIONS if v != 1]
    assert db.upgrade() == []  # idempotent
    db.dispose()

    client: Client = make_client(home=home)
    account = client.get("/v1/account", headers=bearer(secret)).json()
    assert account["balance"] == 100 and account["webhook_secret"].startswith("whsec_")
    assert client.submit(secret).status_code == 201
    client.run_next(predict_time=2.0)
    assert client.get("/v1/account", headers=bearer(secret)).json()["balance"] == 98


# -- the same flows on PostgreSQL (skipped when no server is reachable) ---------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = pg.create_database(pg.require(), "accounts")
    try:
        yield url
    finally:
        pg.drop_database(url)


def test_accounts_on_postgresql(make_client, pg_url: str) -> None:
    from sticker_maker.accounts.retention import sweep
    from sticker_maker.accounts.webhook_sender import WebhookSender

    client: Client = make_client(database_url=pg_url, submits_per_minute=3, run_background=False)
    key = client.new_key(credits=100)
    assert [client.submit(key).status_code for _ in range(4)] == [201, 201, 201, 429]
    client.run_next(predict_time=1.5)
    client.run_next(fail="x")
    job_id = client.get("/v1/jobs", headers=bearer(key)).json()["jobs"][0]["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(key)).status_code == 200
    account = client.get("/v1/account", headers=bearer(key)).json()
    assert account["balance"] == pytest.approx(98.5) and account["reserved"] == 0
    # idempotency and the request counter upserts
    h = {**bearer(key), "Idempotency-Key": "pg-1"}
    other = client.new_key()
    first = client.post("/v1/jobs", headers={**h, **bearer(other)}, json={"prompt": "x"})
    again = client.post("/v1/jobs", headers={**h, **bearer(other)}, json={"prompt": "x"})
    assert first.status_code == 201 and again.json() == first.json()
    # the webhook outbox claim (FOR UPDATE SKIP LOCKED) and the sweeper
    client.submit(other, webhook="https://example.com/hook")
    client.run_next()
    client.run_next()
    sender = WebhookSender(client.svc.db, lambda row, root: {})
    assert len(sender.claim()) == 1 and sender.claim() == []
    assert sweep(client.svc.db, client.svc.storage, 0, now=time.time() + 1).jobs >= 4
