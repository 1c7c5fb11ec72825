"""Validation, authentication and not-found at the HTTP edge (in-process, no worker)."""

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
        c.key = app.state.services.keys.create(credits=1000).secret  # type: ignore[attr-defined]
        yield c


def seed_body(**fields: object) -> dict:
    return {"mid": 3123, "input": {"prompt": "cute cat", **fields}}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing API key"),
        ({"apikey": "sm_wrongkey_" + "x" * 43}, "invalid API key"),
        ({"apikey": "nonsense"}, "invalid API key"),
    ],
)
def test_seed_api_rejects_missing_or_wrong_key(
    client: TestClient, headers: dict, message: str
) -> None:
    r = client.post("/api/v1/generate", headers=headers, json=seed_body())
    assert r.status_code == 401
    body = r.json()
    assert body["status_code"] == "error" and body["code"] == 401 and message in body["message"]
    assert client.get("/api/v1/result", params={"tid": "x"}, headers=headers).status_code == 401


def test_native_api_rejects_wrong_key(client: TestClient) -> None:
    r = client.post("/v1/jobs", headers={"Authorization": "Bearer sm_nope"}, json={"prompt": "x"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "authentication_error"


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"width": "abc"}, "input.width", "not an integer"),
        ({"steps": -1}, "input.steps", "must be ≥ 1"),
        ({"height": 4000}, "input.height", "must be ≤ 2048"),
        ({"width": 100}, "input.width", "multiple of 8"),
        ({"prompt": ""}, "input.prompt", "must not be empty"),
        ({"upscale": "maybe"}, "input.upscale", "boolean"),
        ({"colour": "red"}, "input", "unknown field(s) colour"),
    ],
)
def test_seed_api_names_the_bad_field(
    client: TestClient, fields: dict, field: str, fragment: str
) -> None:
    r = client.post("/api/v1/generate", headers={"apikey": client.key}, json=seed_body(**fields))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status_code"] == "error" and body["code"] == 400
    assert body["message"].startswith(field) and fragment in body["message"]


def test_seed_api_mid_accepts_number_and_string_and_rejects_unknown(client: TestClient) -> None:
    h = {"apikey": client.key}
    assert client.post("/api/v1/generate", headers=h, json=seed_body()).status_code == 200
    assert (
        client.post(
            "/api/v1/generate", headers=h, json={"mid": "3123", "input": {"prompt": "x"}}
        ).status_code
        == 200
    )
    r = client.post("/api/v1/generate", headers=h, json={"mid": 9999, "input": {"prompt": "x"}})
    assert r.status_code == 400 and r.json()["message"].startswith("mid: unknown model 9999")
    r = client.post("/api/v1/generate", headers=h, content=b"{not json")
    assert r.status_code == 400 and "body" in r.json()["message"]


def test_native_validation_errors_list_fields(client: TestClient) -> None:
    r = client.post(
        "/v1/jobs",
        headers={"x-api-key": client.key},
        json={"prompt": "x", "scheduler": "Fast", "samples": 9},
    )
    assert r.status_code == 400
    fields = {f["field"]: f["message"] for f in r.json()["error"]["fields"]}
    assert "UniPC" in fields["scheduler"] and "must be ≤ 4" in fields["samples"]
    r = client.post(
        "/v1/jobs", headers={"x-api-key": client.key}, json={"prompt": "x", "preset": "nope"}
    )
    assert r.status_code == 400 and "sticker-maker" in r.json()["error"]["message"]


def test_unknown_tid_and_job_are_404(client: TestClient) -> None:
    r = client.get("/api/v1/result", params={"tid": "0000"}, headers={"apikey": client.key})
    assert r.status_code == 404 and r.json()["status_code"] == "error"
    r = client.get("/v1/jobs/0000", headers={"x-api-key": client.key})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/files/abcdefghijklmnopqrstuvwxyz.png").status_code == 404


def test_other_keys_jobs_are_not_found(client: TestClient) -> None:
    other = client.app.state.services.keys.create().secret
    tid = client.post("/api/v1/generate", headers={"apikey": client.key}, json=seed_body()).json()[
        "data"
    ]["tid"]
    assert (
        client.get("/api/v1/result", params={"tid": tid}, headers={"apikey": other}).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/result", params={"tid": tid}, headers={"apikey": client.key}
        ).status_code
        == 200
    )


def test_seed_defaults_and_random_seed(client: TestClient) -> None:
    tid = client.post("/api/v1/generate", headers={"apikey": client.key}, json=seed_body()).json()[
        "data"
    ]["tid"]
    data = client.get("/api/v1/result", params={"tid": tid}, headers={"apikey": client.key}).json()
    inp = data["data"]["input"]
    assert (inp["width"], inp["height"], inp["steps"], inp["upscale_steps"]) == (1024, 1024, 20, 10)
    assert 0 <= inp["seed"] < 2**32 and data["data"]["status"] == "starting"
    assert data["data"]["output"] == []


def test_upload_jobs_are_not_seed_or_segmind_requests(client: TestClient) -> None:
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(png, format="PNG")
    r = client.post(
        "/v1/cutouts",
        headers={"x-api-key": client.key},
        files={"image": ("red.png", png.getvalue(), "image/png")},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    for path in (f"/v2/requests/{job_id}", f"/v2/requests/{job_id}/status"):
        r = client.get(path, headers={"x-api-key": client.key})
        assert r.status_code == 404 and r.json() == {"error": f"Request {job_id} not found"}
    r = client.get("/api/v1/result", params={"tid": job_id}, headers={"apikey": client.key})
    assert r.status_code == 404
