"""The queue under real concurrency: claims, NOTIFY wake-ups, leases, the reaper, fencing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from sticker_maker.accounts import KeyStore
from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.db import Database, jobs
from sticker_maker.db.database import DONE_CHANNEL
from sticker_maker.db.listener import Listener
from sticker_maker.jobs import JobStatus, JobStore, OutputFile
from sticker_maker.jobs.reaper import Reaper
from sticker_maker.params import JobInput


@pytest.fixture
def db(any_db_url: str) -> Iterator[Database]:
    database = Database(any_db_url, pool_size=10)
    database.upgrade()
    yield database
    database.dispose()


def job_input(prompt: str = "cute cat") -> JobInput:
    return JobInput(
        preset="tiny",
        prompt=prompt,
        negative_prompt="",
        width=64,
        height=64,
        steps=2,
        guidance_scale=5.0,
        scheduler="Euler",
        seed=1,
        samples=1,
        lora_scale=1.0,
        upscale=False,
        upscale_steps=10,
    )


def new_key(db: Database) -> str:
    return KeyStore(db).create(credits=1_000_000).key.id


def expire(db: Database, job_id: str) -> None:
    """Make a running job's lease look 1000 s old (its worker 'died')."""
    with db.write() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=time.time() - 1000)
        )


def test_each_job_is_claimed_exactly_once_under_concurrency(db: Database) -> None:
    """8 threads (8 connections) race to claim 120 jobs: every job once, none left behind."""
    store = JobStore(db)
    key = new_key(db)
    submitted = {store.submit(key, job_input(f"p{i}")).id for i in range(120)}
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claimer(name: str) -> None:
        start.wait()
        misses = 0
        while misses < 3:
            job = store.claim_next(name)
            if job is None:
                misses += 1
                continue
            misses = 0
            with lock:
                claims.append((job.id, name))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    per_job = Counter(job_id for job_id, _ in claims)
    assert set(per_job) == submitted
    assert max(per_job.values()) == 1
    assert len({name for _, name in claims}) > 1, "no concurrency happened"
    running = [store.get(j) for j in submitted]
    assert all(j.status is JobStatus.RUNNING and j.attempt == 1 for j in running)


def test_submit_notifies_listeners_on_commit(pg_url: str) -> None:
    db = Database(pg_url)
    db.upgrade()
    listener = db.listen()
    try:
        store = JobStore(db)
        key = new_key(db)
        assert list(listener.notifies(timeout=0.2, stop_after=1)) == []
        t0 = time.monotonic()
        store.submit(key, job_input())
        got = list(listener.notifies(timeout=5, stop_after=1))
        assert len(got) == 1 and got[0].channel == "sticker_maker_jobs"
        assert time.monotonic() - t0 < 5
        # a transaction that rolls back notifies no one
        with pytest.raises(RuntimeError), db.write() as conn:
            db.notify(conn)
            raise RuntimeError("rollback")
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        listener.close()
        db.dispose()


def test_lost_lease_is_requeued_then_failed_after_max_attempts(db: Database) -> None:
    store = JobStore(db)
    reaper = Reaper(store, lease_timeout=30, max_attempts=3)
    job_id = store.submit(new_key(db), job_input()).id

    first = store.claim_next("worker-a")
    assert first is not None and first.id == job_id and first.attempt == 1
    assert reaper.run_once().requeued == []  # heartbeat is fresh: nothing to do
    expire(db, job_id)
    assert reaper.run_once().requeued == [job_id]
    requeued = store.get(job_id)
    assert requeued.status is JobStatus.QUEUED and requeued.worker_id is None
    assert "stopped sending heartbeats" in requeued.logs

    second = store.claim_next("worker-b")
    assert second is not None and second.attempt == 2
    # the first worker comes back late: fenced out, nothing it writes lands
    late = [OutputFile("x" * 32 + ".png", "image", 0, 1, 64, 64)]
    assert store.complete(first, late, 1.0) is False
    assert store.record_progress(first, 1, 2) is False
    assert store.get(job_id).status is JobStatus.RUNNING

    expire(db, job_id)
    assert reaper.run_once().requeued == [job_id]
    third = store.claim_next("worker-c")
    assert third is not None and third.attempt == 3
    expire(db, job_id)
    # two reapers at once (two processes): the job fails exactly once
    results = [reaper.run_once(), Reaper(store, lease_timeout=30, max_attempts=3).run_once()]
    assert [r.failed for r in results] == [[job_id], []]
    failed = store.get(job_id)
    assert failed.status is JobStatus.FAILED
    assert "3 attempts" in (failed.error or "")
    assert store.complete(third, late, 1.0) is False


def test_expired_job_with_cancel_requested_ends_canceled(db: Database) -> None:
    store = JobStore(db)
    job_id = store.submit(new_key(db), job_input()).id
    claimed = store.claim_next("w")
    assert claimed is not None
    store.request_cancel(job_id)
    expire(db, job_id)
    reaped = Reaper(store, lease_timeout=30).run_once()
    assert reaped.canceled == [job_id] and reaped.requeued == []
    assert store.get(job_id).status is JobStatus.CANCELED


def test_release_hands_back_without_using_an_attempt(db: Database) -> None:
    store = JobStore(db)
    job_id = store.submit(new_key(db), job_input()).id
    woken: list[bool] = []
    store.on_submit.append(lambda: woken.append(True))
    claimed = store.claim_next("w")
    assert claimed is not None and claimed.attempt == 1
    assert store.release(claimed) is True
    assert store.release(claimed) is False  # fenced: once
    back = store.get(job_id)
    assert back.status is JobStatus.QUEUED and back.attempt == 0 and woken
    again = store.claim_next("w2")
    assert again is not None and again.attempt == 1
    assert store.complete(again, [], 0.5) is True


def test_ending_a_job_notifies_its_id(pg_url: str) -> None:
    db = Database(pg_url)
    db.upgrade()
    heard: list[str] = []
    listener = Listener(db, DONE_CHANNEL, heard.append)
    listener.start()
    try:
        assert listener.listening.wait(10)
        store = JobStore(db)
        key = new_key(db)
        done = store.submit(key, job_input()).id
        claimed = store.claim_next("w")
        assert claimed is not None and store.complete(claimed, [], 0.1)
        dropped = store.submit(key, job_input()).id
        store.request_cancel(dropped)
        deadline = time.monotonic() + 10
        while len(heard) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heard == [done, dropped]
    finally:
        listener.stop()
        db.dispose()


def test_prefer_wait_wakes_when_another_process_finishes_the_job(
    pg_url: str, tmp_path: Path, presets_file: Path
) -> None:
    """An API replica without a worker: NOTIFY, not polling, ends the wait."""
    settings = Settings.load(tmp_path / "home", presets=presets_file, database_url=pg_url)
    app = create_app(settings, run_worker=False)
    other = Database(pg_url)  # "another machine": its own connections
    try:
        with TestClient(app) as client:
            app.state.waiter.first_poll = app.state.waiter.max_poll = 60.0  # no polling help
            secret = app.state.services.keys.create(credits=1_000_000).secret
            remote = JobStore(other)

            def finish_remotely() -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    job = remote.claim_next("remote-worker")
                    if job is not None:
                        time.sleep(0.5)  # the request is waiting by now
                        remote.complete(job, [], 0.2)
                        return
                    time.sleep(0.05)

            finisher = threading.Thread(target=finish_remotely)
            finisher.start()
            t0 = time.monotonic()
            r = client.post(
                "/v1/jobs",
                json={"preset": "tiny", "prompt": "cat", "steps": 2},
                headers={"Authorization": f"Bearer {secret}", "Prefer": "wait=30"},
            )
            finisher.join(30)
            assert r.status_code in (200, 201), r.text
            assert r.json()["status"] == "succeeded"
            assert time.monotonic() - t0 < 20  # a poll would have come after 60 s
    finally:
        other.dispose()
