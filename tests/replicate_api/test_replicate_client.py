"""The real ``replicate`` client (PyPI 1.0.7) against a running server with its worker (tiny
models): only ``REPLICATE_BASE_URL`` and the token change."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
import replicate
from conftest import RunningServer
from PIL import Image

from sticker_maker.api.replicate_models import V1_IDS, V2_ID

pytestmark = pytest.mark.slow

FAST = {"width": 64, "height": 64, "steps": 4}


@pytest.fixture(scope="module")
def token(shared_server: RunningServer) -> str:
    return shared_server.new_key(credits=500)


@pytest.fixture
def client(shared_server: RunningServer, token: str) -> replicate.Client:
    return replicate.Client(api_token=token, base_url=shared_server.url)


def fetch(url: str) -> Image.Image:
    r = httpx.get(url, timeout=30)
    r.raise_for_status()
    return Image.open(io.BytesIO(r.content))


def test_run_by_model_name_with_the_environment(
    shared_server: RunningServer, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example: module-level ``replicate.run`` with two environment variables."""
    monkeypatch.setenv("REPLICATE_BASE_URL", shared_server.url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", token)
    client = replicate.Client()  # what replicate.run uses, built from the environment
    output = client.run(
        "fofr/sticker-maker",
        input={"prompt": "a cute cat", "number_of_images": 2, "output_format": "webp", **FAST},
    )
    assert len(output) == 2
    stickers = [fetch(url) for url in output]
    assert all(s.format == "WEBP" and s.mode == "RGBA" for s in stickers)
    assert stickers[0].size == (64, 64)


def test_each_published_version(client: replicate.Client) -> None:
    v1 = client.run(
        f"fofr/sticker-maker:{V1_IDS[0]}", input={"prompt": "a fox", "upscale": False, **FAST}
    )
    image, sticker = (fetch(u) for u in v1)  # the image, then its cut-out
    assert (image.format, image.mode, sticker.format, sticker.mode) == ("PNG", "RGB", "PNG", "RGBA")

    v2 = client.run(
        f"fofr/sticker-maker:{V2_ID}",
        input={"prompt": "a fox", "output_format": "jpg", "output_quality": 50, **FAST},
    )
    (jpg,) = (fetch(u) for u in v2)
    assert (jpg.format, jpg.mode) == ("JPEG", "RGB")


def test_create_wait_reload_and_cut_out_seed(client: replicate.Client) -> None:
    prediction = client.predictions.create(
        version=V2_ID, input={"prompt": "a dog", "seed": 42, "output_format": "png", **FAST}
    )
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.output
    assert prediction.metrics and prediction.metrics["predict_time"] > 0
    again = client.models.predictions.create(
        model="fofr/sticker-maker",
        input={"prompt": "a dog", "seed": 42, "output_format": "png", **FAST},
        wait=60,
    )
    assert again.status == "succeeded"
    first, second = fetch(prediction.output[0]), fetch(again.output[0])
    assert first.tobytes() == second.tobytes(), "same seed, same sticker"


def test_async_run(client: replicate.Client) -> None:
    async def main() -> list[str]:
        return await client.async_run(
            "fofr/sticker-maker", input={"prompt": "a frog", "output_format": "png", **FAST}
        )

    output = asyncio.run(main())
    assert len(output) == 1 and fetch(output[0]).mode == "RGBA"


def test_stream_through_the_worker(client: replicate.Client) -> None:
    prediction = client.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "a cat", **FAST}
    )
    events = list(prediction.stream())
    assert events[-1].event.value == "done"
    assert [e.event.value for e in events].count("output") == 1
