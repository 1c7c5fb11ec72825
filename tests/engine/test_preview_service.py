"""Live previews end to end: a real ``serve`` with its worker and model process, a tiny
random AutoencoderTiny, and the events route that sends ``event: preview``."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningServer, TinyModels, start_server, stop_server
from PIL import Image

from sticker_maker.config import Settings
from sticker_maker.storage import preview_name

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def presets(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preview-presets") / "presets.toml"
    path.write_text(
        f"""
[presets.slow]
base = "{tiny_models.sdxl}"
steps = 40
width = 256
height = 256
"""
    )
    return path


@pytest.fixture(scope="module")
def server(
    presets: Path, tiny_taesd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        running = start_server(
            tmp_path_factory.mktemp("preview-server") / "home",
            presets,
            "--preview-vae",
            str(tiny_taesd),
            "--preview-every",
            "5",
        )
    yield running
    stop_server(running)


def events(server: RunningServer, key: str, job_id: str) -> list[tuple[str, dict]]:
    """The job's event stream, read to its end."""
    out: list[tuple[str, dict]] = []
    with httpx.stream(
        "GET",
        f"{server.url}/v1/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    ) as response:
        assert response.status_code == 200
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((name, json.loads(line.removeprefix("data: "))))
    return out


def test_a_running_job_streams_previews_then_they_are_gone(server: RunningServer) -> None:
    key = server.new_key()
    r = httpx.post(
        f"{server.url}/v1/jobs",
        json={"prompt": "cat", "preset": "slow", "seed": 3},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    stream = events(server, key, job_id)
    names = [name for name, _ in stream]
    assert names[-1] == "done" and stream[-1][1]["status"] == "succeeded"
    previews = [data["image"] for name, data in stream if name == "preview"]
    assert previews, names
    head, _, body = previews[-1].partition(",")
    assert head == "data:image/jpeg;base64"
    picture = Image.open(io.BytesIO(base64.b64decode(body)))
    assert picture.format == "JPEG" and picture.size == (256, 256)
    # previews come while it runs, between progress events, never after done
    assert names.index("preview") > names.index("progress")
    storage_dir = Settings.load(server.home).storage_dir
    assert not (storage_dir / preview_name(job_id)).exists()  # deleted when the job ended


def test_a_preview_autoencoder_that_does_not_load_stops_serve(
    presets: Path, tmp_path: Path
) -> None:
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(RuntimeError) as caught:
        start_server(
            tmp_path / "home",
            presets,
            "--preview-vae",
            str(tmp_path / "not-a-model"),
            "--preview-every",
            "2",
        )
    assert "preview autoencoder" in str(caught.value)
    assert "STICKER_MAKER_PREVIEW_VAE" in str(caught.value)


def test_the_sdk_wait_hands_previews_to_on_progress(server: RunningServer) -> None:
    import sticker_maker as sm

    client = sm.Client(server.url, server.new_key())
    job = client.submit("cat", preset="slow", seed=4)
    seen: list[bytes] = []
    job.wait(timeout=120, on_progress=lambda j: j.preview and seen.append(j.preview))
    assert job.succeeded and seen
    assert Image.open(io.BytesIO(seen[-1])).size == (256, 256)
