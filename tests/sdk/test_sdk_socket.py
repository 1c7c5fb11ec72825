"""The SDK over a real socket against ``sticker-maker serve`` (with its own worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunningServer

import sticker_maker as sm

pytestmark = pytest.mark.slow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def key(shared_server: RunningServer) -> str:
    return shared_server.new_key()


def test_generate_and_save_over_http(
    shared_server: RunningServer, key: str, tmp_path: Path
) -> None:
    with sm.Client(shared_server.url, key) as client:
        job = client.generate("a happy frog", preset="tiny", seed=21, timeout=120)
        assert job.succeeded and job.images[0].url.startswith(f"{shared_server.url}/files/")
        paths = job.save(tmp_path)
        assert [p.name for p in paths] == ["a-happy-frog-21.png", "a-happy-frog-21-sticker.png"]
        assert job.stickers[0].to_pil().mode == "RGBA"
        canceled = client.jobs.cancel(job.id)  # finished jobs stay as they are
        assert canceled.status == "succeeded"


@pytest.mark.anyio
async def test_async_client_over_http(shared_server: RunningServer, key: str) -> None:
    steps: list[int] = []

    async def on_progress(job: sm.AsyncJob) -> None:
        steps.append(job.progress.step)

    async with sm.AsyncClient(shared_server.url, key) as client:
        job = await client.generate("a snail", preset="t", timeout=120, on_progress=on_progress)
    assert job.succeeded and steps[-1] == 4 and steps == sorted(steps)
