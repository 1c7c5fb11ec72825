"""``Prefer: wait=N`` on ``POST /v1/jobs`` (Replicate semantics) and the waiter behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer
from fastapi.testclient import TestClient

from sticker_maker.api import create_app
from sticker_maker.api.native import prefer_wait
from sticker_maker.api.waiting import JobWaiter
from sticker_maker.config import Settings
from sticker_maker.db import Database
from sticker_maker.errors import NotFound
from sticker_maker.jobs import JobStatus, JobStore
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings.load(tmp_path / "home"), run_worker=False)
    with TestClient(app) as c:
        c.headers["x-api-key"] = app.state.services.keys.create(credits=1000).secret
        yield c


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("wait=5", 5), ("wait", 60), ("respond-async, wait=60", 60), ("Wait=1", 1)],
)
def test_prefer_header_parsing(header: str | None, seconds: int | None) -> None:
    assert prefer_wait(header) == seconds


@pytest.mark.parametrize("header", ["wait=0", "wait=61", "wait=abc", "wait=-1"])
def test_bad_wait_is_400_and_queues_nothing(client: TestClient, header: str) -> None:
    r = client.post("/v1/jobs", json={"prompt": "x"}, headers={"Prefer": header})
    assert r.status_code == 400
    assert r.json()["error"]["fields"][0]["field"] == "Prefer"
    assert "1 to 60" in r.json()["error"]["message"]
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_wait_returns_the_envelope_as_it_stands(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={"prompt": "x"}, headers={"Prefer": "wait=1"})
    assert r.status_code == 201 and r.headers["preference-applied"] == "wait=1"
    assert r.json()["status"] == "queued" and r.json()["queue_position"] == 0


@pytest.mark.slow
def test_wait_answers_with_the_finished_job(shared_server: RunningServer) -> None:
    r = httpx.post(
        f"{shared_server.url}/v1/jobs",
        headers={"x-api-key": shared_server.new_key(), "Prefer": "wait=60"},
        json={"preset": "tiny", "prompt": "a cat", "seed": 2},
        timeout=90,
    )
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    assert len(r.json()["output"]) == 2


class CountingStore(JobStore):
    reads = 0

    def get(self, job_id, key_id=None):  # type: ignore[no-untyped-def]
        job = super().get(job_id, key_id)
        self.reads += 1  # counted once the read is done, so a test can act after it
        return job


def _queued_job(tmp_path: Path) -> tuple[CountingStore, JobStore, str]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    from sticker_maker.accounts import KeyStore

    key = KeyStore(db).create().key.id
    store = CountingStore(db)
    job = store.submit(key, resolve(GenerationRequest(prompt="x"), load_presets()))
    return store, JobStore(db), job.id


def _when(ready: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` in a thread as soon as ``ready()`` holds."""

    def run() -> None:
        while not ready():
            time.sleep(0.001)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_waiter_wakes_on_notification_without_polling(tmp_path: Path) -> None:
    store, _, job_id = _queued_job(tmp_path)
    waiter = JobWaiter(store, first_poll=30, max_poll=30)  # only a wake-up can end it early

    def finish() -> None:
        claimed = store.claim_next("w")
        assert claimed is not None
        store.fail(claimed, "boom")

    # finish once the waiter has read the job (an event, not a timer that can fire before
    # the first read on a loaded machine)
    helper = _when(lambda: store.reads >= 1, finish)
    job = asyncio.run(waiter.wait(job_id, None, timeout=30))
    helper.join()
    assert job.status is JobStatus.FAILED and job.error == "boom"
    assert store.reads == 2  # before sleeping, and once after the wake-up
    assert waiter.waiting() == 0


def test_waiter_polls_when_another_process_finishes_the_job(tmp_path: Path) -> None:
    store, elsewhere, job_id = _queued_job(tmp_path)
    waiter = JobWaiter(store)  # `elsewhere` has no waiter: like a worker in another process

    def finish() -> None:
        claimed = elsewhere.claim_next("w")
        assert claimed is not None
        elsewhere.fail(claimed, "boom")

    helper = _when(lambda: store.reads >= 3, finish)  # after the waiter polled 3 times
    job = asyncio.run(waiter.wait(job_id, None, timeout=30))
    helper.join()
    assert job.status is JobStatus.FAILED
    assert 3 < store.reads < 30  # it kept polling and saw the end; backed off, not busy


def test_wait_owner_check_and_timeout(tmp_path: Path) -> None:
    store, _, job_id = _queued_job(tmp_path)
    waiter = JobWaiter(store)
    job = asyncio.run(waiter.wait(job_id, None, timeout=0.2))
    assert job.status is JobStatus.QUEUED
    with pytest.raises(NotFound):
        asyncio.run(waiter.wait(job_id, "another-key", timeout=1))
