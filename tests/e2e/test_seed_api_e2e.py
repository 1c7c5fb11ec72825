"""End to end: real server process, key from the real CLI, seed-API shape, real tiny model."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
from conftest import RunningServer
from PIL import Image

pytestmark = pytest.mark.slow


def poll_seed(server: RunningServer, key: str, tid: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.url}/api/v1/result", params={"tid": tid}, headers={"apikey": key})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        if data["status"] in ("succeeded", "failed", "canceled"):
            return data
        time.sleep(0.05)
    raise AssertionError(f"job {tid} did not finish in {timeout}s")


def submit_seed(server: RunningServer, key: str, **input_fields) -> str:
    body = {"mid": 3123, "input": {"prompt": "cute cat", **input_fields}}
    r = httpx.post(f"{server.url}/api/v1/generate", headers={"apikey": key}, json=body)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["message"] == "post success."
    assert reply["code"] == 20000 and reply["status_code"] == "success"
    return reply["data"]["tid"]


def fetch_png(url: str) -> Image.Image:
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(r.content))


def test_prompt_becomes_transparent_sticker(server: RunningServer) -> None:
    key = server.new_key()
    assert key.startswith("sm_") and len(key) > 40
    tid = submit_seed(server, key, width=64, height=64, steps=4, seed=342383)
    data = poll_seed(server, key, tid)
    assert data["status"] == "succeeded", data
    assert data["tid"] == tid
    assert data["input"]["prompt"] == "cute cat" and data["input"]["seed"] == 342383
    for stamp in ("created_at", "started_at", "completed_at"):
        assert data[stamp].endswith("Z") and len(data[stamp]) == 24
    assert 0 < data["predict_time"] <= data["total_time"]

    image_url, sticker_url = data["output"]
    assert image_url.startswith(server.url + "/files/")
    assert len(image_url.rsplit("/", 1)[1]) >= 32  # unguessable names
    image = fetch_png(image_url)
    sticker = fetch_png(sticker_url)
    assert image.size == sticker.size == (64, 64)
    assert image.mode == "RGB" and sticker.mode == "RGBA"
    alpha = np.asarray(sticker)[..., 3]
    assert alpha.min() == 0, "the cut-out has no transparent background pixels"
    assert alpha.max() == 255, "the cut-out has no opaque subject pixels"


def test_same_seed_gives_identical_pixels(server: RunningServer) -> None:
    key = server.new_key()
    results = []
    for _ in range(2):
        data = poll_seed(
            server, key, submit_seed(server, key, width=64, height=64, steps=4, seed=7)
        )
        results.append(np.asarray(fetch_png(data["output"][0])))
    assert np.array_equal(results[0], results[1])
    other = poll_seed(server, key, submit_seed(server, key, width=64, height=64, steps=4, seed=8))
    assert not np.array_equal(results[0], np.asarray(fetch_png(other["output"][0])))


def test_native_api_job_envelope(server: RunningServer) -> None:
    key = server.new_key()
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        f"{server.url}/v1/jobs",
        headers=headers,
        json={"preset": "t", "prompt": "a fox", "seed": 3, "samples": 2},
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["preset"] == "tiny"
    deadline = time.monotonic() + 120
    while job["status"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = httpx.get(job["urls"]["get"], headers=headers).json()
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"step": 4, "total": 4}
    metrics = job["metrics"]
    assert metrics["queue_time"] >= 0 and 0 < metrics["predict_time"] <= metrics["total_time"]
    assert [(o["kind"], o["index"], o["seed"]) for o in job["output"]] == [
        ("image", 0, 3),
        ("sticker", 0, 3),
        ("image", 1, 4),
        ("sticker", 1, 4),
    ]
    assert "cut-out" in job["logs"]
    docs = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/jobs" in docs["paths"] and "/api/v1/generate" in docs["paths"]


def test_missing_model_fails_job_with_actionable_error(server: RunningServer) -> None:
    key = server.new_key()
    headers = {"x-api-key": key}
    r = httpx.post(
        f"{server.url}/v1/jobs", headers=headers, json={"preset": "missing-model", "prompt": "x"}
    )
    assert r.status_code == 201
    job = r.json()
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = httpx.get(job["urls"]["get"], headers=headers).json()
    assert job["status"] == "failed"
    assert "no-such-owner/no-such-sdxl-model" in job["error"]
    assert "presets file" in job["error"] and "missing-model" in job["error"]
    # the service is still healthy and still makes stickers afterwards
    ok = httpx.post(
        f"{server.url}/v1/jobs", headers=headers, json={"preset": "tiny", "prompt": "y"}
    )
    assert ok.status_code == 201
