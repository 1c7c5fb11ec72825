"""Segmind routes at the HTTP edge, in-process with no worker: shapes, errors, time limits."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from sticker_maker.api import create_app
from sticker_maker.api.errors import api_family
from sticker_maker.api.segmind import ModelSlug, job_cost
from sticker_maker.config import Settings
from sticker_maker.db import jobs
from sticker_maker.jobs import OutputFile
from sticker_maker.storage import new_file_name


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(
        tmp_path / "home", public_url="https://stickers.example.com/", sync_timeout=0.3
    )
    app = create_app(settings, run_worker=False)
    with TestClient(app) as c:
        c.headers["x-api-key"] = app.state.services.keys.create(credits=1000).secret
        yield c


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "prompt: is required"),
        ({"prompt": "x", "img_width": 100}, "img_width: 100 must be a multiple of 8"),
        ({"prompt": "x", "img_height": 4096}, "img_height: 4096 is out of range (must be ≤ 2048)"),
        ({"prompt": "x", "num_inference_steps": 0}, "num_inference_steps: 0 is out of range"),
        ({"prompt": "x", "samples": 5}, "samples: 5 is out of range (must be ≤ 4)"),
        ({"prompt": "x", "seed": -2}, "seed: -2 is out of range (must be ≥ -1)"),
        (
            {"prompt": "x", "scheduler": "Fast"},
            "scheduler: unknown scheduler 'Fast'; allowed: DDIM",
        ),
        ({"prompt": "x", "guidance_scale": "lots"}, "guidance_scale: 'lots' is not a number"),
        ({"prompt": "x", "base64": "maybe"}, "base64: 'maybe' is not a boolean"),
        ({"prompt": "x", "colour": "red"}, "colour: is not a parameter of this model; allowed:"),
    ],
)
def test_bad_parameters_name_segmind_fields(client: TestClient, params: dict, message: str) -> None:
    for path in ("/v1/Norod78-SDXL-StickerSheet-Lora", "/v2/Norod78-SDXL-StickerSheet-Lora"):
        r = client.post(path, json=params)
        assert r.status_code == 400, r.text
        assert list(r.json()) == ["error"] and r.json()["error"].startswith(message)


def test_hosted_defaults_and_ranges_are_accepted(client: TestClient) -> None:
    """The seed document's own example (steps 25, 1024², UniPC, seed) queues unchanged."""
    example = {
        "prompt": "Cute sparkle pink barbie StickerSheet",
        "negative_prompt": "boring, poorly drawn",
        "scheduler": "UniPC",
        "num_inference_steps": 25,
        "guidance_scale": 8,
        "samples": 1,
        "seed": 3426017487,
        "img_width": 1024,
        "img_height": 1024,
        "base64": False,
        "lora_scale": 1,
    }
    r = client.post("/v2/Norod78-SDXL-StickerSheet-Lora", json=example)
    assert r.status_code == 200, r.text
    job = client.app.state.services.jobs.get(r.json()["request_id"])
    assert (job.input.steps, job.input.width, job.input.seed) == (25, 1024, 3426017487)
    assert job.input.scheduler == "UniPC" and job.input.guidance_scale == 8
    # omitted parameters take the preset's defaults (Segmind's: UniPC, 20 steps, CFG 7.5)
    r = client.post("/v2/stickersheet", json={"prompt": "x", "seed": -1})
    job = client.app.state.services.jobs.get(r.json()["request_id"])
    assert (job.input.scheduler, job.input.steps, job.input.guidance_scale) == ("UniPC", 20, 7.5)
    assert 0 <= job.input.seed < 2**32


def test_v2_urls_are_absolute_from_public_url(client: TestClient) -> None:
    body = client.post("/v2/fofr/sticker-maker", json={"prompt": "x"}).json()
    root = f"https://stickers.example.com/v2/requests/{body['request_id']}"
    assert body == {
        "request_id": body["request_id"],
        "status": "QUEUED",
        "status_url": f"{root}/status",
        "response_url": root,
        "poll_url": f"{root}/status",
    }
    status = client.get(f"/v2/requests/{body['request_id']}/status").json()
    assert status["status"] == "QUEUED" and status["queue_position"] == 0
    result = client.get(f"/v2/requests/{body['request_id']}")
    assert result.status_code == 200 and result.json()["output"] is None


def test_sync_route_answers_504_in_time_and_the_job_goes_on(client: TestClient) -> None:
    r = client.post("/v1/stickersheet", json={"prompt": "x"})
    assert r.status_code == 504
    message = r.json()["error"]
    assert "did not finish within 0.3s" in message
    request_id = message.split()[1]
    assert f"https://stickers.example.com/v2/requests/{request_id}" in message
    status = client.get(f"/v2/requests/{request_id}/status")
    assert status.status_code == 200 and status.json()["status"] == "QUEUED"


def test_canceled_or_other_keys_or_expired_requests(client: TestClient) -> None:
    request_id = client.post("/v2/stickersheet", json={"prompt": "x"}).json()["request_id"]
    svc = client.app.state.services
    other = svc.keys.create().secret
    r = client.get(f"/v2/requests/{request_id}", headers={"x-api-key": other})
    assert r.status_code == 404 and r.json() == {"error": f"Request {request_id} not found"}

    svc.jobs.request_cancel(request_id)
    r = client.get(f"/v2/requests/{request_id}/status")
    assert r.status_code == 422
    assert r.json() == {
        "request_id": request_id,
        "status": "FAILED",
        "error": "canceled by request",
    }

    # results are kept for the retention time (an hour), then 404 like Segmind's
    with svc.db.write() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == request_id).values(completed_at=time.time() - 3601)
        )
    r = client.get(f"/v2/requests/{request_id}")
    assert r.status_code == 404 and r.json() == {"error": f"Request {request_id} not found"}


def test_missing_key_and_unknown_model_use_segmind_envelope(client: TestClient) -> None:
    r = client.post("/v1/stickersheet", json={"prompt": "x"}, headers={"x-api-key": ""})
    assert r.status_code == 401 and "missing API key" in r.json()["error"]
    r = client.post("/v2/no-such-model", json={"prompt": "x"})
    assert r.status_code == 404
    assert r.json()["error"].startswith("model 'no-such-model' not found; available models:")
    broke = client.app.state.services.keys.create(credits=1).secret
    r = client.post("/v1/stickersheet", json={"prompt": "x"}, headers={"x-api-key": broke})
    assert r.status_code == 406 and r.json()["error"].startswith("Insufficient credits")
    r = client.post("/v1/stickersheet", content=b"{nope")
    assert r.status_code == 400 and r.json() == {"error": "body: is not valid JSON"}
    # native routes keep theirs, and win over the catch-all /v1/<model>
    r = client.post("/v1/jobs", json={"prompt": "x", "preset": "tiny-missing"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"


def test_model_routes_never_shadow_native_paths(client: TestClient) -> None:
    pattern = re.compile(f"^{ModelSlug.regex}$")
    for native in (
        "jobs",
        "jobs/1/cancel",
        "keys",
        "account",
        "presets",
        "stickers/x",
        "predictions",
        "models/fofr/sticker-maker/predictions",
        "files",
    ):
        assert not pattern.match(native), native
    for model in (
        "stickersheet",
        "fofr/sticker-maker",
        "jobsite",
        "Norod78-SDXL-StickerSheet-Lora",
    ):
        assert pattern.match(model), model
    r = client.post("/v1/presets", json={"prompt": "x"})  # native GET-only path: not a model
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "family"),
    [
        ("GET", "/v1/stickersheet", "segmind"),  # a model's path, another method
        ("DELETE", "/v1/jobs/abc", "native"),
        ("GET", "/v1/no/such/thing", "segmind"),
        ("PUT", "/v2/stickersheet", "segmind"),
        ("GET", "/v1/predictions/abc/nope", "replicate"),
        ("POST", "/v1/predictions/abc", "replicate"),
        ("POST", "/v1/trainings", "replicate"),
    ],
)
def test_unknown_routes_are_404_never_405_or_a_model(
    client: TestClient, method: str, path: str, family: str
) -> None:
    r = client.request(method, path, json={"prompt": "x"})
    assert r.status_code == 404, r.text
    body = r.json()
    if family == "replicate":
        assert body["status"] == 404 and "no such route" in body["detail"]
        assert r.headers["content-type"] == "application/problem+json"
    elif family == "native":
        assert body["error"]["code"] == "not_found"
    else:
        assert "no such route" in body["error"]
    assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued


def test_api_family_matches_whole_path_segments() -> None:
    assert api_family("/v1/stickersheet") == "segmind"  # not the native /v1/stickers
    assert api_family("/v1/stickers/x") == "native"
    assert api_family("/v1/jobs") == "native" and api_family("/v1/jobs/1/cancel") == "native"
    assert api_family("/v2/requests/1") == "segmind"
    assert api_family("/v1/predictions/1") == "replicate"
    assert api_family("/v1/modelsheet") == "segmind"


def test_cost_and_credits_come_from_the_ledger(client: TestClient) -> None:
    """``x-cost`` / ``cost`` is what billing settled: predict time x price (1 credit/s)."""
    svc = client.app.state.services
    request_id = client.post("/v2/stickersheet", json={"prompt": "x"}).json()["request_id"]
    assert job_cost(svc, svc.jobs.get(request_id)) == 0.0  # nothing charged while queued
    job = svc.jobs.claim_next("test-worker")  # play the worker
    assert job is not None and job.id == request_id
    name = new_file_name("png")
    svc.storage.put(name, PNG)
    svc.jobs.complete(job, [OutputFile(name, "image", 0, job.input.seed, 8, 8)], 2.5)
    body = client.get(f"/v2/requests/{request_id}").json()
    assert body["status"] == "COMPLETED" and body["cost"] == 2.5
    assert body["metrics"]["inference_time"] == 2.5
    assert svc.keys.balance(client.headers["x-api-key"].split("_")[1]) == 1000 - 2.5


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
