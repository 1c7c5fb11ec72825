"""The SDK against the real app in-process (injected transports, no network).

The app here runs no worker of its own: it shares the database and files of the
``shared_server`` process, whose worker runs the jobs — the multi-process
deployment (API processes beside workers), so waits here take the polling path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import sticker_maker as sm

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def key(app: FastAPI) -> str:
    return app.state.services.keys.create(credits=10000).secret


@pytest.fixture
def client(http: TestClient, key: str) -> Iterator[sm.Client]:
    with sm.Client("http://testserver", key, http_client=http) as c:
        yield c


@pytest.mark.anyio
async def test_async_generate_images_as_bytes_pil_and_files(
    app: FastAPI, key: str, tmp_path: Path
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with sm.AsyncClient("http://sdk.test", key, transport=transport) as client:
        job = await client.generate("A fox!", preset="tiny", seed=9, samples=2, timeout=120)
        assert isinstance(job, sm.AsyncJob) and job.succeeded
        assert [o.seed for o in job.images] == [9, 10] and len(job.stickers) == 2
        data = await job.images[0].read()
        assert data.startswith(PNG)
        sticker = await job.stickers[1].to_pil()
        assert sticker.mode == "RGBA" and sticker.size == (64, 64)
        saved = await job.save(tmp_path / "out")
        assert sorted(p.name for p in saved) == [
            "a-fox-10-sticker.png",
            "a-fox-10.png",
            "a-fox-9-sticker.png",
            "a-fox-9.png",
        ]
        assert (tmp_path / "out" / "a-fox-9.png").read_bytes() == data
        listed = await client.jobs.list(limit=5)
        assert listed[0].id == job.id


def test_generate_is_one_request_when_quick(client: sm.Client, http: TestClient) -> None:
    sent: list[tuple[str, str, str | None]] = []
    http.event_hooks["request"] = [
        lambda r: sent.append((r.method, r.url.path, r.headers.get("prefer")))
    ]
    try:
        job = client.generate("cute cat", preset="t", seed=1, timeout=60)
    finally:
        http.event_hooks["request"] = []
    assert job.succeeded and job.progress == sm.Progress(4, 4)
    assert sent == [("POST", "/v1/jobs", "wait=60")]
    assert job.metrics.predict_time and job.metrics.predict_time <= job.metrics.total_time
    image = job.images[0].to_pil()
    assert image.mode == "RGB" and image.size == (64, 64)
    assert job.input["seed"] == 1 and job.seed == 1


def test_submit_wait_reports_progress_then_refresh_and_list(client: sm.Client) -> None:
    job = client.submit("a dog", preset="tiny", steps=4)
    assert job.status == "queued" and not job.done
    seen: list[tuple[str, int | None, int]] = []
    job.wait(
        timeout=120,
        on_progress=lambda j: seen.append((j.status, j.queue_position, j.progress.step)),
    )
    assert seen[0][0] == "queued" and seen[0][1] is not None
    assert seen[-1] == ("succeeded", None, 4)
    steps = [step for _, _, step in seen]
    assert steps == sorted(steps)
    assert job.refresh().status == "succeeded"
    assert client.jobs.get(job.id).output[0].url == job.output[0].url
    assert job.id in [j.id for j in client.jobs.list()]


def test_cancel_a_running_job_stops_it_at_a_step(client: sm.Client) -> None:
    job = client.submit("a long one", preset="tiny", steps=100)
    deadline = time.monotonic() + 120
    while job.refresh().status == "queued":  # wait for a state, not for a time
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert job.status == "running"
    job.cancel()
    assert job.status == "running"  # the cancel is asked; the worker ends it at its next step
    with pytest.raises(sm.JobCanceledError) as info:
        job.wait(timeout=120)
    assert info.value.job is job and job.status == "canceled"
    assert job.progress.step < 100 and not job.output


def test_errors_are_typed(client: sm.Client, http: TestClient) -> None:
    with pytest.raises(sm.InvalidRequestError) as info:
        client.submit("x", preset="tiny", width=100, samples=9)
    assert info.value.status_code == 400
    assert info.value.fields == {
        "width": "100 must be a multiple of 8",
        "samples": "9 is out of range (must be ≤ 4)",
    }
    with pytest.raises(sm.NotFoundError):
        client.jobs.get("no-such-job")
    # no credits at all: after earlier tiny jobs, this service's measured speed makes a
    # reservation smaller than any small balance
    broke = http.app.state.services.keys.create(credits=0).secret  # type: ignore[attr-defined]
    with pytest.raises(sm.InsufficientCreditsError) as poor:
        sm.Client("http://testserver", broke, http_client=http).generate("x", preset="tiny")
    assert poor.value.status_code == 406 and "balance is 0" in poor.value.message
    with pytest.raises(sm.AuthenticationError) as auth:
        sm.Client("http://testserver", "sm_wrong", http_client=http).jobs.list()
    assert auth.value.status_code == 401 and auth.value.code == "authentication_error"

    with pytest.raises(sm.JobFailedError) as failed:
        client.generate("x", preset="missing-model", timeout=60)
    assert not isinstance(failed.value, sm.JobCanceledError)
    assert "no-such-owner/no-such-sdxl-model" in failed.value.job.error
    assert failed.value.job.status == "failed"

    job = client.submit("x", preset="tiny")
    with pytest.raises(sm.WaitTimeoutError) as late:
        job.wait(timeout=0)
    assert late.value.job is job and not job.done
    assert isinstance(late.value, sm.APIError)
