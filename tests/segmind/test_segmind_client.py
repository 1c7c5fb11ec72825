"""The real ``segmind`` client (PyPI 1.3.0) against a running server: only the base URL changes."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from conftest import RunningServer
from PIL import Image
from segmind import InferenceFailed, SegmindClient, SegmindError

pytestmark = pytest.mark.slow

SLUG = "Norod78-SDXL-StickerSheet-Lora"
FAST = {"num_inference_steps": 4, "img_width": 64, "img_height": 64, "scheduler": "Euler"}


@pytest.fixture(scope="module")
def key(shared_server: RunningServer) -> str:
    return shared_server.new_key(credits=500)


@pytest.fixture(scope="module")
def client(shared_server: RunningServer, key: str) -> SegmindClient:
    # a long read timeout: the first call includes the model's warm-up on a busy machine
    return SegmindClient(base_url=f"{shared_server.url}/v1", api_key=key, timeout=300)


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_run_sync_returns_image_bytes_and_accounting_headers(
    client: SegmindClient, shared_server: RunningServer
) -> None:
    fresh = SegmindClient(
        base_url=client.base_url, api_key=shared_server.new_key(credits=100), timeout=300
    )
    r = fresh.run_sync(SLUG, prompt="cute cat StickerSheet", seed=42, **FAST)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    image = png(r.content)
    assert image.size == (64, 64) and image.mode == "RGB"
    headers = r.headers
    assert len(headers["x-request-id"]) == 36
    assert headers["x-seed-value"] == "42"
    generation_time = float(headers["x-generation-time"])
    assert generation_time > 0
    # every built-in preset costs 1 credit per second of predict time, settled by billing
    cost = float(headers["x-cost"])
    assert cost == pytest.approx(generation_time, abs=0.002)
    assert float(headers["x-remaining-credits"]) == pytest.approx(100 - cost, abs=0.002)

    again = client.run_sync(SLUG, prompt="cute cat StickerSheet", seed=42, **FAST)
    assert np.array_equal(np.asarray(png(again.content)), np.asarray(image)), "same seed"


def test_run_sync_base64_returns_json_with_every_image(client: SegmindClient) -> None:
    r = client.run_sync("stickersheet", prompt="a fox", seed=5, samples=2, base64=True, **FAST)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["request_id"] == r.headers["x-request-id"] and body["seed"] == 5
    images = [png(base64.b64decode(b)) for b in body["images"]]
    assert len(images) == 2 and base64.b64decode(body["image"]) == base64.b64decode(
        body["images"][0]
    )
    stickers = [png(base64.b64decode(b)) for b in body["stickers"]]
    assert [s.mode for s in stickers] == ["RGBA", "RGBA"]


def test_submit_async_and_wait(client: SegmindClient, shared_server: RunningServer) -> None:
    job = client.submit_async(SLUG, prompt="a dog StickerSheet", seed=7, samples=2, **FAST)
    submitted = job.submit_response
    assert submitted["status"] == "QUEUED" and submitted["request_id"] == job.request_id
    for name in ("status_url", "response_url", "poll_url"):
        assert submitted[name].startswith(f"{shared_server.url}/v2/requests/{job.request_id}")

    result = job.wait(timeout=120, interval=0.1)
    assert result["status"] == "COMPLETED"
    metrics = result["metrics"]
    assert 0 < metrics["inference_time"] <= metrics["total_time"]
    assert metrics["queue_time"] >= 0
    assert isinstance(result["output"], list) and len(result["output"]) == 2
    for url in result["output"]:
        r = httpx.get(url)
        assert r.status_code == 200 and png(r.content).size == (64, 64)
    assert job.status()["status"] == "COMPLETED"


def test_run_is_submit_plus_wait(client: SegmindClient) -> None:
    result = client.run("t", prompt="a bird", seed=3)  # an alias of the "tiny" preset
    assert result["status"] == "COMPLETED"
    assert isinstance(result["output"], str) and result["output"].endswith(".png")
    assert result["seed"] == 3


def test_wrong_key_is_401(shared_server: RunningServer) -> None:
    bad = SegmindClient(base_url=f"{shared_server.url}/v1", api_key="sm_nope")
    with pytest.raises(SegmindError) as info:
        bad.run_sync(SLUG, prompt="x", **FAST)
    assert info.value.status == 401 and info.value.detail == "invalid API key"
    with pytest.raises(SegmindError) as info:
        bad.submit_async(SLUG, prompt="x")
    assert info.value.status == 401


def test_failed_job_raises_inference_failed_with_the_reason(client: SegmindClient) -> None:
    job = client.submit_async("missing-model", prompt="x")
    with pytest.raises(InferenceFailed) as info:
        job.wait(timeout=60, interval=0.1)
    assert "no-such-owner/no-such-sdxl-model" in info.value.detail
    assert info.value.status_body["status"] == "FAILED"
    # the result URL serves the same failure as HTTP 422
    r = client._client.get(job.response_url)
    assert r.status_code == 422 and r.json()["status"] == "FAILED"
    # the synchronous route reports it as an error the client raises
    with pytest.raises(SegmindError) as sync_info:
        client.run_sync("missing-model", prompt="x")
    assert sync_info.value.status == 422
    assert "no-such-owner/no-such-sdxl-model" in sync_info.value.detail


def test_unknown_model_bad_parameter_and_unknown_request(client: SegmindClient) -> None:
    with pytest.raises(SegmindError) as info:
        client.run_sync("no-such-model", prompt="x")
    assert info.value.status == 404
    assert "no-such-model" in info.value.detail and SLUG in info.value.detail

    with pytest.raises(SegmindError) as info:
        client.run_sync(SLUG, prompt="x", img_width=100)
    assert info.value.status == 400
    assert info.value.detail == "img_width: 100 must be a multiple of 8"

    r = client._client.get(client.base_url.removesuffix("/v1") + "/v2/requests/nope/status")
    assert r.status_code == 404 and r.json() == {"error": "Request nope not found"}
