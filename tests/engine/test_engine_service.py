"""The engine behind the API: parameter errors at submit, and a real server + worker for
cancel latency, the warm model cache, batches and upscale outputs."""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer, TinyModels, start_server, stop_server
from fastapi.testclient import TestClient
from PIL import Image

from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.schedulers import SCHEDULER_NAMES


@pytest.fixture(scope="module")
def presets(
    tiny_models: TinyModels, upscale_models: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("service-presets") / "presets.toml"
    path.write_text(
        f"""
[presets.tiny]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_diffusers}"
steps = 2
width = 64
height = 64

[presets.tiny-kohya]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_kohya}"
lora_scale = 0.5
steps = 2
width = 64
height = 64

[presets.up]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_diffusers}"
steps = 2
width = 64
height = 64
upscaler = "{upscale_models.esrgan}"
refiner = "{upscale_models.refiner}"
upscale_tile = 64
upscale_padding = 8

[presets.slow]
base = "{tiny_models.sdxl}"
steps = 100
width = 256
height = 256
"""
    )
    return path


# -- parameter errors at submit (in-process API, no worker) ---------------------------------


@pytest.fixture(scope="module")
def client(presets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("api-home")
    app = create_app(Settings.load(home, presets=presets), run_worker=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = (
            "Bearer " + app.state.services.keys.create(credits=1_000_000).secret
        )
        yield c


def test_unknown_sampler_is_a_400_listing_every_allowed_name(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={"preset": "tiny", "prompt": "cat", "scheduler": "Euler b"})
    assert r.status_code == 400
    (field,) = r.json()["error"]["fields"]
    assert field["field"] == "scheduler"
    assert all(name in field["message"] for name in SCHEDULER_NAMES)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"samples": 5}, "samples", "must be ≤ 4"),
        ({"samples": 0}, "samples", "must be ≥ 1"),
        ({"lora_scale": 4.5}, "lora_scale", "must be ≤ 4"),
        ({"guidance_scale": -1}, "guidance_scale", "must be ≥ 0"),
        ({"steps": 101}, "steps", "must be ≤ 100"),
        ({"seed": -2}, "seed", "must be ≥ -1"),
        ({"upscale_steps": 0}, "upscale_steps", "must be ≥ 1"),
    ],
)
def test_bounds_name_the_field_and_range(
    client: TestClient, fields: dict[str, Any], field: str, fragment: str
) -> None:
    r = client.post("/v1/jobs", json={"preset": "tiny", "prompt": "cat", **fields})
    assert r.status_code == 400
    (error,) = r.json()["error"]["fields"]
    assert error["field"] == field and fragment in error["message"]


def test_upscale_without_upscaler_is_a_400_naming_preset_and_keys(client: TestClient) -> None:
    r = client.post("/v1/jobs", json={"preset": "tiny", "prompt": "cat", "upscale": True})
    assert r.status_code == 400
    (error,) = r.json()["error"]["fields"]
    assert error["field"] == "upscale"
    assert "'tiny'" in error["message"] and "[presets.tiny]" in error["message"]
    assert "upscaler" in error["message"] and "refiner" in error["message"]
    ok = client.post("/v1/jobs", json={"preset": "up", "prompt": "cat", "upscale": True})
    assert ok.status_code == 201 and ok.json()["input"]["upscale"] is True


def test_seed_random_when_absent_or_minus_one(client: TestClient) -> None:
    seeds = set()
    for seed in (None, -1, -1):
        body = {"preset": "tiny", "prompt": "cat"} | ({"seed": seed} if seed else {})
        r = client.post("/v1/jobs", json=body)
        assert r.status_code == 201
        seeds.add(r.json()["input"]["seed"])
    assert len(seeds) == 3 and all(0 <= s < 2**32 for s in seeds)


# -- a real server and worker --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(presets: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # see _one_torch_thread in conftest.py
        running = start_server(
            tmp_path_factory.mktemp("engine-server") / "home", presets, "--pipeline-cache", "1"
        )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.new_key()


def submit(server: RunningServer, key: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/v1/jobs",
        json={"prompt": "cat", **body},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def get(server: RunningServer, key: str, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def cancel(server: RunningServer, key: str, job_id: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return r.json()


def wait(server: RunningServer, key: str, job_id: str, until: Any, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(server, key, job_id)
        if until(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached the expected state: {job}")


def done(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "canceled")


def test_cancel_of_a_running_job_takes_effect_within_one_step(
    server: RunningServer, key: str
) -> None:
    running = submit(server, key, preset="slow", seed=1)
    queued = submit(server, key, preset="slow", seed=2)
    wait(server, key, running["id"], lambda j: j["progress"]["step"] >= 3)

    # A queued job is cancelled at once.
    assert cancel(server, key, queued["id"])["status"] == "canceled"

    cancel(server, key, running["id"])
    job = wait(server, key, running["id"], done, timeout=60)
    assert job["status"] == "canceled"
    match = re.search(r"canceled at step (\d+)/(\d+) \(.* at step (\d+)\)", job["logs"])
    assert match, job["logs"]
    stopped, total, signalled = (int(g) for g in match.groups())
    # The model process stops at the end of the step that was running when the cancel
    # arrived (at most one more progress message may have been in flight).
    assert stopped - signalled <= 2 and stopped < total
    assert job["progress"]["step"] == stopped
    assert not job["output"]

    # The worker is free again: the next job runs.
    after = wait(server, key, submit(server, key, preset="tiny", seed=3)["id"], done)
    assert "generated 1 image(s) 64x64" in after["logs"], after


def test_presets_sharing_a_base_do_not_reload_it(server: RunningServer, key: str) -> None:
    jobs = [
        wait(server, key, submit(server, key, preset=preset, seed=4)["id"], done)
        for preset in ("tiny", "tiny-kohya", "tiny", "tiny-kohya")
    ]
    assert all("generated 1 image(s)" in job["logs"] for job in jobs)
    # The server runs with --pipeline-cache 1: the base stays loaded across LoRA switches.
    for job in jobs[1:]:
        assert "loaded models (base" not in job["logs"], job["logs"]


def _png(url: str) -> Image.Image:
    r = httpx.get(url)
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


def test_upscale_and_samples_through_the_service(server: RunningServer, key: str) -> None:
    job = wait(
        server,
        key,
        submit(server, key, preset="up", seed=40, samples=2, upscale=True, upscale_steps=2)["id"],
        done,
    )
    assert job["status"] == "succeeded", job
    outputs = job["output"]
    assert sorted((o["index"], o["kind"], o["seed"]) for o in outputs) == [
        (0, "image", 40),
        (0, "sticker", 40),
        (1, "image", 41),
        (1, "sticker", 41),
    ]
    for output in outputs:
        assert (output["width"], output["height"]) == (128, 128)
        assert _png(output["url"]).size == (128, 128)
    assert job["progress"]["step"] == job["progress"]["total"] > 2  # refine steps counted
    assert os.path.basename(outputs[0]["url"]) != os.path.basename(outputs[2]["url"])
