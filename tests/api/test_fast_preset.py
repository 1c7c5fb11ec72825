"""The built-in 4-step preset is reachable on every API family, by name and by alias."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings.load(tmp_path / "home"), run_worker=False)
    with TestClient(app) as c:
        c.services = app.state.services  # type: ignore[attr-defined]
        c.key = c.services.keys.create(credits=1000).secret  # type: ignore[attr-defined]
        yield c


def stored(client: TestClient, job_id: str) -> tuple[str, int, float, str]:
    job = client.services.jobs.get(job_id)  # type: ignore[attr-defined]
    return job.input.preset, job.input.steps, job.input.guidance_scale, job.input.scheduler


FAST = ("sticker-maker-fast", 4, 0.0, "Euler")


@pytest.mark.parametrize("name", ["sticker-maker-fast", "fast", "fofr/sticker-maker-fast"])
def test_the_fast_preset_on_every_api_family(client: TestClient, name: str) -> None:
    # native
    r = client.post(
        "/v1/jobs", headers={"x-api-key": client.key}, json={"preset": name, "prompt": "cat"}
    )
    assert r.status_code == 201, r.text
    assert stored(client, r.json()["id"]) == FAST
    # the seed sticker-maker API: mid by name or alias
    r = client.post(
        "/api/v1/generate",
        headers={"apikey": client.key},
        json={"mid": name, "input": {"prompt": "cat"}},
    )
    assert r.status_code == 200, r.text
    assert stored(client, r.json()["data"]["tid"]) == FAST
    # Segmind v2 (queued): the model in the path
    r = client.post(f"/v2/{name}", headers={"x-api-key": client.key}, json={"prompt": "cat"})
    assert r.status_code == 200, r.text
    assert stored(client, r.json()["request_id"]) == FAST


def test_the_fast_preset_is_listed(client: TestClient) -> None:
    r = client.get("/v1/presets", headers={"x-api-key": client.key})
    assert r.status_code == 200
    assert "sticker-maker-fast" in r.text
