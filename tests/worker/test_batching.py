"""Batching across jobs in the worker: the claim, and jobs run together on the tiny model
with their own seeds, outputs, pixels (as alone) and bills (their share of the call)."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pg
import pytest
from conftest import TinyModels, write_presets
from PIL import Image

from sticker_maker.api.services import Services
from sticker_maker.config import Settings
from sticker_maker.jobs import Job
from sticker_maker.params import parse_request, resolve

PRICE = 0.5


def _services(tmp_path: Path, presets: Path | None = None, url: str | None = None) -> Services:
    return Services.build(Settings.load(tmp_path / "home", presets=presets, database_url=url))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """SQLite in the test's home, or a fresh PostgreSQL database (skipped if none runs)."""
    if request.param == "sqlite":
        yield None
        return
    url = pg.create_database(pg.require(), "batch")
    try:
        yield url
    finally:
        pg.drop_database(url)


def _submit(svc: Services, key_id: str, **fields: Any) -> Job:
    body = {"preset": "sticker-maker", "prompt": "cat", "width": 64, "height": 64, **fields}
    return svc.jobs.submit(key_id, resolve(parse_request(body), svc.presets))


def test_claim_takes_the_oldest_job_and_its_batch_mates_only(
    tmp_path: Path, database_url: str | None
) -> None:
    svc = _services(tmp_path, url=database_url)
    key = svc.keys.create(credits=1000).key.id
    first = _submit(svc, key, seed=1)
    other_size = _submit(svc, key, seed=2, width=128)
    mate = _submit(svc, key, seed=3, prompt="dog")
    other_steps = _submit(svc, key, seed=4, steps=5)
    last_mate = _submit(svc, key, seed=5)
    claimed = svc.jobs.claim_batch("w1", 2)
    assert [j.id for j in claimed] == [first.id, mate.id]  # bounded, oldest first
    assert all(j.attempt == 1 and j.worker_id == "w1" for j in claimed)
    # next: the oldest left (128 px) has no mate queued
    assert [j.id for j in svc.jobs.claim_batch("w2", 4)] == [other_size.id]
    assert [j.id for j in svc.jobs.claim_batch("w2", 4)] == [other_steps.id]
    assert [j.id for j in svc.jobs.claim_batch("w2", 4)] == [last_mate.id]
    assert svc.jobs.claim_batch("w2", 4) == []
    # completion stays fenced per job (id + attempt): a stale copy cannot complete
    stale = claimed[0]
    assert svc.jobs.complete(stale, [], 0.1, 0.05)
    assert not svc.jobs.complete(stale, [], 0.1, 0.05)
    svc.db.dispose()


@pytest.fixture(scope="module")
def priced_presets(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    extra = f"""
[presets.priced]
base = "{tiny_models.sticker_sdxl}"
lora = "{tiny_models.lora_diffusers}"
scheduler = "Euler"
steps = 2
width = 64
height = 64
price_per_second = {PRICE}
"""
    return write_presets(tmp_path_factory.mktemp("batch") / "presets.toml", tiny_models, extra)


def _worker(svc: Services, max_batch: int) -> Any:
    from sticker_maker.worker import Worker

    worker = Worker(
        svc.jobs,
        svc.storage,
        presets_file=str(svc.settings.presets_file),
        max_batch=max_batch,
        poll_interval=0.1,
    )
    svc.jobs.on_submit.append(worker.wake)
    return worker


def _until(svc: Services, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 600  # a guard against a hang, not a timing assertion
    while svc.jobs.get(job_id).status.value != status:
        assert time.monotonic() < deadline, svc.jobs.get(job_id).status
        time.sleep(0.01)


def _wait(svc: Services, ids: list[str]) -> dict[str, Job]:
    deadline = time.monotonic() + 600  # a guard against a hang on a loaded machine
    while True:
        jobs = {i: svc.jobs.get(i) for i in ids}
        if all(j.status.is_terminal for j in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, [j.status for j in jobs.values()]
        time.sleep(0.05)


def _pixels(svc: Services, job: Job) -> np.ndarray:
    (image,) = [o for o in job.output if o.kind == "image"]
    return np.asarray(Image.open(io.BytesIO(svc.storage.get(image.file))), dtype=np.int16)


def test_jobs_queued_together_run_in_one_call_each_as_if_alone(
    priced_presets: Path, tmp_path: Path
) -> None:
    svc = _services(tmp_path, priced_presets)
    key = svc.keys.create(credits=1000).key.id
    mates = [
        _submit(svc, key, preset="priced", prompt=p, seed=s)
        for p, s in [("red cat", 11), ("blue dog", 22), ("green frog", 33)]
    ]
    apart = _submit(svc, key, preset="priced", prompt="red cat", seed=11, steps=3)
    worker = _worker(svc, max_batch=4)
    worker.start()  # all four are queued already: its first claim takes the three mates
    try:
        jobs = _wait(svc, [j.id for j in [*mates, apart]])
        # the same job alone gives the same pixels (within a rounding step)
        again = _submit(svc, key, preset="priced", prompt="red cat", seed=11)
        alone = _wait(svc, [again.id])[again.id]
    finally:
        worker.stop()
    assert all(j.status.value == "succeeded" for j in jobs.values()), [
        (j.status, j.error) for j in jobs.values()
    ]
    for job in mates:
        done = jobs[job.id]
        assert "in a batch of up to 3 jobs" in done.logs
        assert {o.seed for o in done.output} == {job.input.seed}  # per-job seeds
        assert {o.kind for o in done.output} == {"image", "sticker"}
    assert "batch of" not in jobs[apart.id].logs  # other steps: its own call
    # billing: each batched job pays its share of the call, not the whole call
    with svc.db.read() as conn:
        from sqlalchemy import select

        from sticker_maker.db import jobs as jobs_table

        billed = dict(
            conn.execute(
                select(jobs_table.c.id, jobs_table.c.billed_time).where(
                    jobs_table.c.id.in_([j.id for j in [*mates, apart, again]])
                )
            ).all()
        )
    for job in mates:
        assert 0 < billed[job.id] < jobs[job.id].predict_time
    # alone, a job pays its own steps, encode, decode and cut-out: nearly all of its time
    for lone in (jobs[apart.id], alone):
        assert 0.5 * lone.predict_time < billed[lone.id] <= lone.predict_time
    account = svc.keys.balance(key)
    assert account == pytest.approx(1000 - sum(billed.values()) * PRICE, abs=1e-6)

    assert "batch of" not in alone.logs
    batched = _pixels(svc, jobs[mates[0].id])
    same = np.abs(_pixels(svc, alone) - batched)
    assert same.max() <= 2
    other = np.abs(_pixels(svc, jobs[mates[1].id]) - batched)  # another seed and prompt
    assert other.mean() > 5 * same.mean() and other.max() > 2


def test_joiners_are_claimed_only_behind_a_head_of_their_key(
    tmp_path: Path, database_url: str | None
) -> None:
    """Joining a running batch never jumps the queue: a job of another key at the head
    stops it (the running batch then drains and the head goes next)."""
    from sticker_maker.params import batch_key_text

    svc = _services(tmp_path, url=database_url)
    key = svc.keys.create(credits=1000).key.id
    running = _submit(svc, key, seed=1)
    (claimed,) = svc.jobs.claim_batch("w1", 1)
    assert claimed.id == running.id
    batch = batch_key_text(claimed.input)
    mate = _submit(svc, key, seed=2)
    second_mate = _submit(svc, key, seed=3)
    joined = svc.jobs.claim_joiners("w1", batch, 1)  # bounded by the free room
    assert [j.id for j in joined] == [mate.id] and joined[0].worker_id == "w1"
    assert joined[0].attempt == 1 and joined[0].status.value == "running"
    other = _submit(svc, key, seed=4, width=128)  # behind second_mate: joining goes on
    assert [j.id for j in svc.jobs.claim_joiners("w1", batch, 4)] == [second_mate.id]
    late_mate = _submit(svc, key, seed=5)  # behind `other`, the head now: no joining
    assert svc.jobs.claim_joiners("w1", batch, 4) == []
    assert [j.id for j in svc.jobs.claim_batch("w2", 4)] == [other.id]
    assert [j.id for j in svc.jobs.claim_joiners("w1", batch, 4)] == [late_mate.id]
    svc.db.dispose()


def test_a_job_submitted_while_a_batch_runs_joins_it(priced_presets: Path, tmp_path: Path) -> None:
    """Continuous batching in the worker: the second job starts at the next step of the
    running one instead of waiting for it, and both give their pixels as if alone."""
    svc = _services(tmp_path, priced_presets)
    key = svc.keys.create(credits=1000).key.id
    worker = _worker(svc, max_batch=4)
    worker.start()
    try:
        warm = _submit(svc, key, preset="priced", seed=1, steps=2)  # loads the model
        _wait(svc, [warm.id])
        # Hold the model process so the first job cannot finish before the late one is
        # claimed, however loaded the machine (no race between the test and the steps).
        child = worker._child.proc.pid
        os.kill(child, signal.SIGSTOP)
        try:
            first = _submit(svc, key, preset="priced", prompt="red cat", seed=11, steps=40)
            _until(svc, first.id, "running")
            late = _submit(svc, key, preset="priced", prompt="blue dog", seed=22, steps=40)
            _until(svc, late.id, "running")  # claimed to join the running batch
        finally:
            os.kill(child, signal.SIGCONT)
        jobs = _wait(svc, [first.id, late.id])
        alone = _submit(svc, key, preset="priced", prompt="blue dog", seed=22, steps=40)
        alone_done = _wait(svc, [alone.id])[alone.id]
    finally:
        worker.stop()
    done_first, done_late = jobs[first.id], jobs[late.id]
    assert done_first.status.value == done_late.status.value == "succeeded"
    assert "in a batch of up to 2 jobs" in done_late.logs
    assert "in a batch of up to 2 jobs" in done_first.logs
    # it started while the first was still running (joined), not after it
    assert done_late.started_at is not None and done_first.completed_at is not None
    assert done_late.started_at < done_first.completed_at
    assert np.abs(_pixels(svc, done_late) - _pixels(svc, alone_done)).max() <= 2
