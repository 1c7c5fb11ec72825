"""Retention: jobs, inputs and files go an hour (configurable) after completion; ledger stays."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update

from accounts.helpers import Client, bearer
from sticker_maker.accounts.retention import sweep
from sticker_maker.db import files, jobs, ledger


def test_sweep_deletes_expired_jobs_and_files_but_keeps_the_ledger(client: Client) -> None:
    key = client.new_key()
    old = client.submit(key).json()["id"]
    client.run_next()
    fresh = client.submit(key).json()["id"]
    running = client.submit(key).json()["id"]
    client.run_next()
    client.svc.jobs.claim_next("w")  # `running` stays running: never swept
    urls = [o["url"] for o in client.get(f"/v1/jobs/{old}", headers=bearer(key)).json()["output"]]
    with client.svc.db.read() as conn:
        ledger_rows = conn.execute(select(func.count()).select_from(ledger)).scalar()

    # the old job finished an hour and a second ago (the default retention)
    with client.svc.db.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == old).values(completed_at=time.time() - 3601))
    result = sweep(client.svc.db, client.svc.storage, 3600)
    assert (result.jobs, result.files) == (1, 2)
    assert client.get(f"/v1/jobs/{old}", headers=bearer(key)).status_code == 404
    assert client.get(f"/v1/jobs/{fresh}", headers=bearer(key)).status_code == 200

    result = sweep(client.svc.db, client.svc.storage, 3600, now=time.time() + 3601)
    assert (result.jobs, result.files) == (1, 2)
    for job_id in (old, fresh):
        assert client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 404
    for url in urls:
        assert client.get(url.removeprefix("http://testserver")).status_code == 404
    assert client.get(f"/v1/jobs/{running}", headers=bearer(key)).status_code == 200
    with client.svc.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(ledger)).scalar() == ledger_rows
        assert conn.execute(select(func.count()).select_from(files)).scalar() == 0
    assert client.get("/v1/account", headers=bearer(key)).json()["balance"] < 1000


def test_sweeper_thread_runs_inside_the_service(make_client) -> None:
    client: Client = make_client(retention_seconds=0.3, sweep_interval=0.1)
    key = client.new_key()
    job_id = client.submit(key).json()["id"]
    client.run_next()
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 200
    deadline = time.monotonic() + 10
    while client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code != 404:
        assert time.monotonic() < deadline, "the sweeper never deleted the expired job"
        time.sleep(0.05)
