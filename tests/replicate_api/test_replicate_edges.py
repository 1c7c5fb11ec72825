"""The Replicate-compatible routes, served on a socket by uvicorn in a thread (no worker: the
test plays it), driven by the real ``replicate`` 1.0.7 client: shapes, errors, versions,
webhooks, streams."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import replicate
from conftest import REPO
from PIL import Image
from replicate.exceptions import ModelError, ReplicateError
from sqlalchemy import update

from replicate_api.conftest import App
from sticker_maker.api.replicate_models import V1_IDS, V2_ID, preset_version_id
from sticker_maker.db import jobs

# -- models and versions -------------------------------------------------------------------


def test_every_preset_is_a_model_with_cog_schemas(app: App) -> None:
    model = app.replicate.models.get("fofr/sticker-maker")
    assert (model.owner, model.name, model.visibility) == ("fofr", "sticker-maker", "public")
    assert model.latest_version is not None and model.latest_version.id == V2_ID
    versions = [v.id for v in model.versions.list()]
    assert versions == [V2_ID, *V1_IDS]

    v2 = model.versions.get(V2_ID).openapi_schema["components"]["schemas"]
    props = v2["Input"]["properties"]
    assert [p for p, _ in sorted(props.items(), key=lambda kv: kv[1]["x-order"])] == [
        "prompt",
        "negative_prompt",
        "width",
        "height",
        "steps",
        "number_of_images",
        "output_format",
        "output_quality",
        "seed",
    ]
    assert (props["width"]["default"], props["steps"]["default"]) == (1152, 17)
    assert (props["number_of_images"]["minimum"], props["number_of_images"]["maximum"]) == (1, 10)
    assert props["output_format"]["allOf"] == [{"$ref": "#/components/schemas/output_format"}]
    assert v2["output_format"]["enum"] == ["webp", "jpg", "png"]
    assert v2["Output"] == {
        "title": "Output",
        "type": "array",
        "items": {"type": "string", "format": "uri"},
    }
    v1 = app.replicate.models.get("fofr", "sticker-maker").versions.get(V1_IDS[1])
    v1_props = v1.openapi_schema["components"]["schemas"]["Input"]["properties"]
    assert v1_props["upscale"]["default"] is True and v1_props["upscale_steps"]["default"] == 10
    assert "number_of_images" not in v1_props

    # a preset with an owner/name alias is that model; its one version is the preset's
    tiny = app.replicate.models.get("ada/tiny-stickers")
    assert tiny.latest_version is not None
    preset = app.svc.presets.get("tiny")
    assert tiny.latest_version.id == preset_version_id(preset)
    schema = tiny.latest_version.openapi_schema["components"]["schemas"]["Input"]
    assert schema["required"] == ["prompt"] and schema["properties"]["steps"]["default"] == 4
    assert "preset" not in schema["properties"]


def test_unknown_model_and_version_are_404_problems(app: App) -> None:
    with pytest.raises(ReplicateError) as err:
        app.replicate.models.get("fofr/no-such-model")
    assert err.value.status == 404 and "fofr/no-such-model not found" in (err.value.detail or "")
    with pytest.raises(ReplicateError) as err:
        app.replicate.predictions.create(version="0" * 64, input={"prompt": "x"})
    assert err.value.status == 404 and "version" in (err.value.detail or "")
    with pytest.raises(ReplicateError) as err:  # a version of another model
        app.replicate.predictions.create(version=f"ada/tiny-stickers:{V2_ID}", input={})
    assert err.value.status == 404


# -- creating predictions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "detail"),
    [
        ({"number_of_images": 11}, "input.number_of_images: 11 is out of range (must be ≤ 10)"),
        ({"output_format": "gif"}, "input.output_format: 'gif' is not allowed"),
        ({"output_quality": 101}, "input.output_quality: 101 is out of range"),
        ({"width": 100}, "input.width: 100 must be a multiple of 8"),
        ({"upscale": True}, "input.upscale: is not a known field"),
    ],
)
def test_invalid_input_is_422_naming_the_field(app: App, inputs: dict, detail: str) -> None:
    with pytest.raises(ReplicateError) as err:
        app.replicate.models.predictions.create(model="fofr/sticker-maker", input=inputs)
    assert err.value.status == 422 and (err.value.detail or "").startswith(detail)
    assert app.http.get("/v1/jobs").json()["jobs"] == []  # nothing queued


def test_v1_upscale_needs_an_upscaler_and_says_so(app: App) -> None:
    with pytest.raises(ReplicateError) as err:  # v1's default is upscale=true
        app.replicate.predictions.create(version=V1_IDS[0], input={"prompt": "x"})
    assert err.value.status == 422 and (err.value.detail or "").startswith("input.upscale:")


def test_versions_resolve_to_their_published_defaults(app: App) -> None:
    v2 = app.replicate.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "a fox", "number_of_images": 7}
    )
    v1 = app.replicate.predictions.create(
        version=f"fofr/sticker-maker:{V1_IDS[1]}", input={"prompt": "a fox", "upscale": False}
    )
    native = {j["id"]: j["input"] for j in app.http.get("/v1/jobs").json()["jobs"]}
    got = native[v2.id]
    assert (got["width"], got["height"], got["steps"], got["guidance_scale"]) == (
        1152,
        1152,
        17,
        6.0,
    )
    assert (got["samples"], got["output_format"], got["output_quality"]) == (7, "webp", 90)
    assert got["prompt"] == "a fox" and got["upscale"] is False
    got = native[v1.id]
    assert (got["width"], got["steps"], got["guidance_scale"], got["output_format"]) == (
        1024,
        20,
        7.0,
        "png",
    )
    assert (v2.model, v2.version, v2.status) == ("fofr/sticker-maker", V2_ID, "starting")
    assert v2.input == {"prompt": "a fox", "number_of_images": 7}  # as it was asked
    assert v1.version == V1_IDS[1]


def test_output_format_on_the_native_api(app: App) -> None:
    r = app.http.post("/v1/jobs", json={"prompt": "x", "output_format": "webp"})
    assert r.status_code == 201 and r.json()["input"]["output_format"] == "webp"
    r = app.http.post("/v1/jobs", json={"prompt": "x", "output_quality": -1})
    assert r.status_code == 400
    assert r.json()["error"]["fields"][0]["field"] == "output_quality"


def test_prediction_lifecycle_through_the_client(app: App) -> None:
    prediction = app.replicate.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "x", "number_of_images": 2}
    )
    assert prediction.status == "starting" and prediction.output is None
    app.play_worker(outputs=2, fmt="webp")
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.error is None
    # v2: the transparent stickers only, in the asked format
    assert len(prediction.output) == 2
    assert all(
        u.startswith(f"{app.root}/files/") and u.endswith(".webp") for u in prediction.output
    )
    assert app.http.get(prediction.output[0]).headers["content-type"] == "image/webp"
    assert prediction.metrics == {"predict_time": 1.25, "total_time": pytest.approx(0, abs=5)}
    assert "generated 1 image(s)" in (prediction.logs or "")
    assert prediction.completed_at and prediction.completed_at.endswith("Z")

    again = app.replicate.predictions.get(prediction.id)
    assert again.output == prediction.output
    listed = app.replicate.predictions.list()
    assert [p.id for p in listed.results] == [prediction.id] and listed.next is None


def test_v1_returns_the_image_then_its_cutout(app: App) -> None:
    prediction = app.replicate.predictions.create(
        version=V1_IDS[0], input={"prompt": "x", "upscale": False}
    )
    app.play_worker()
    prediction.reload()
    files = app.svc.jobs.get(prediction.id).output
    assert [o.kind for o in files] == ["image", "sticker"]
    assert prediction.output == [f"{app.root}/files/{o.file}" for o in files]


def test_failed_and_canceled(app: App) -> None:
    failing = app.replicate.models.predictions.create(model="fofr/sticker-maker", input={})
    app.play_worker(fail="out of memory")
    failing.reload()
    assert (failing.status, failing.error) == ("failed", "out of memory")

    threading.Timer(0.3, lambda: app.play_worker(fail="out of memory")).start()
    with pytest.raises(ModelError, match="out of memory"):
        app.replicate.run(f"fofr/sticker-maker:{V2_ID}", input={}, wait=5)

    queued = app.replicate.models.predictions.create(model="fofr/sticker-maker", input={})
    queued.cancel()
    assert queued.status == "canceled" and queued.error is None


def test_run_by_version_polls_after_a_wait_that_ran_out(app: App) -> None:
    """``Prefer: wait`` answers ``starting`` when the wait runs out, so the client polls."""
    done: dict[str, Any] = {}

    def worker() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if app.svc.jobs.list_for_key(app.svc.keys.list_keys()[0][0].id):
                time.sleep(2.3)  # past the 2 s wait
                done["job"] = app.play_worker()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=worker)
    thread.start()
    output = app.replicate.run(
        f"fofr/sticker-maker:{V2_ID}", input={"prompt": "x", "output_format": "png"}, wait=2
    )
    thread.join()
    # plain http:// URLs stay strings in the client (it wraps https: and data: only)
    assert isinstance(output, list) and len(output) == 1
    assert output[0].endswith(".png")


def test_prefer_wait_returns_the_finished_prediction(app: App) -> None:
    job_id: dict[str, str] = {}

    def worker() -> None:
        for _ in range(200):
            queued = app.svc.jobs.list_for_key(app.svc.keys.list_keys()[0][0].id)
            if queued:
                job_id["id"] = app.play_worker().id
                return
            time.sleep(0.02)

    thread = threading.Thread(target=worker)
    thread.start()
    r = app.http.post(
        "/v1/models/fofr/sticker-maker/predictions",
        json={"input": {"prompt": "x"}},
        headers={"Prefer": "wait=5"},
    )
    thread.join()
    assert r.status_code == 201 and r.headers["preference-applied"] == "wait=5"
    assert r.json()["status"] == "succeeded" and r.json()["id"] == job_id["id"]
    r = app.http.post(
        "/v1/predictions", json={"version": V2_ID, "input": {}}, headers={"Prefer": "wait=61"}
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("Prefer: wait=61")


def test_deployments_are_models(app: App) -> None:
    prediction = app.replicate.deployments.predictions.create(
        deployment="fofr/sticker-maker", input={"prompt": "x"}
    )
    assert prediction.version == V2_ID
    with pytest.raises(ReplicateError) as err:
        app.replicate.deployments.predictions.create(deployment="me/nothing", input={})
    assert err.value.status == 404


def test_native_jobs_are_not_predictions_and_keys_are_isolated(app: App) -> None:
    native = app.http.post("/v1/jobs", json={"prompt": "x"}).json()["id"]
    with pytest.raises(ReplicateError) as err:
        app.replicate.predictions.get(native)
    assert err.value.status == 404
    mine = app.replicate.models.predictions.create(model="fofr/sticker-maker", input={})
    other = app.client(app.svc.keys.create(credits=10).secret)
    with pytest.raises(ReplicateError) as err:
        other.predictions.get(mine.id)
    assert err.value.status == 404
    assert other.predictions.list().results == []
    with pytest.raises(ReplicateError) as err:
        app.client("nope").run("fofr/sticker-maker", input={})
    assert err.value.status == 401


def test_list_pages_with_a_cursor(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from sticker_maker.api import replicate as routes

    monkeypatch.setattr(routes, "PAGE", 2)
    ids = [
        app.replicate.models.predictions.create(model="fofr/sticker-maker", input={}).id
        for _ in range(5)
    ]
    seen, page = [], app.replicate.predictions.list()
    while True:
        seen += [p.id for p in page.results]
        if page.next is None:
            break
        page = app.replicate.predictions.list(page.next)
    assert seen == ids[::-1]


def test_data_removed_after_retention(app: App) -> None:
    prediction = app.replicate.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "secret"}
    )
    app.play_worker()
    retention = app.svc.settings.retention_seconds
    with app.svc.db.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == prediction.id)
            .values(completed_at=time.time() - retention - 1)
        )
    body = app.http.get(f"/v1/predictions/{prediction.id}").json()
    assert body["data_removed"] is True and body["output"] is None and body["input"] == {}
    assert body["status"] == "succeeded"


# -- account, webhooks, stream -------------------------------------------------------------


def test_account_and_webhook_secret(app: App) -> None:
    account = app.replicate.accounts.current()
    assert (account.type, account.username) == ("user", "ada")
    secret = app.replicate.webhooks.default.secret()
    assert secret.key.startswith("whsec_")
    assert secret.key == app.http.get("/v1/account").json()["webhook_secret"]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} deliveries arrived"
            time.sleep(0.02)


def test_webhooks_carry_the_bare_prediction_signed_with_the_key_secret(app: App) -> None:
    receiver = Receiver()
    try:
        prediction = app.replicate.models.predictions.create(
            model="fofr/sticker-maker",
            input={"prompt": "x"},
            webhook=receiver.url,
            webhook_events_filter=["start", "completed"],
        )
        app.play_worker()
        receiver.wait_for(2)
    finally:
        receiver.server.shutdown()
    secret = app.replicate.webhooks.default.secret()
    statuses = set()
    for headers, body in receiver.requests:
        assert (
            replicate.webhooks.validate(headers=headers, body=body.decode(), secret=secret) is None
        )
        sent = json.loads(body)
        assert sent["id"] == prediction.id and sent["version"] == V2_ID  # bare, no envelope
        statuses.add(sent["status"])
    assert statuses == {"processing", "succeeded"}
    tampered = dict(receiver.requests[0][0])
    with pytest.raises(replicate.webhook.InvalidSignatureError):
        replicate.webhooks.validate(headers=tampered, body='{"id": "x"}', secret=secret)


def test_webhook_events_and_url_are_checked(app: App) -> None:
    r = app.http.post(
        "/v1/predictions",
        json={
            "version": V2_ID,
            "input": {},
            "webhook": "http://x.test/",
            "webhook_events_filter": ["progress"],
        },
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("webhook_events_filter")
    r = app.http.post(
        "/v1/predictions",
        json={"version": V2_ID, "input": {}, "webhook_completed": "http://169.254.169.254/"},
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("webhook_completed: refused")


def test_stream_sends_logs_output_and_done(app: App) -> None:
    prediction = app.replicate.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "x", "number_of_images": 2}
    )
    threading.Timer(0.3, lambda: app.play_worker(outputs=2)).start()
    events = list(prediction.stream())
    kinds = [e.event.value for e in events]
    assert kinds == ["logs", "output", "output", "done"], kinds
    assert events[0].data == "generated 1 image(s)"
    prediction.reload()
    assert [str(e.data) for e in events[1:3]] == prediction.output


def test_stream_of_a_failed_prediction_raises_its_error(app: App) -> None:
    prediction = app.replicate.models.predictions.create(model="fofr/sticker-maker", input={})
    app.play_worker(fail="boom")
    with pytest.raises(RuntimeError, match="boom"):
        list(prediction.stream())


def test_native_events_stream(app: App) -> None:
    job_id = app.http.post("/v1/jobs", json={"prompt": "x"}).json()["id"]
    threading.Timer(0.3, app.play_worker).start()
    with app.http.stream("GET", f"/v1/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [
        (block.split("\n")[0].removeprefix("event: "), block.split("data: ", 1)[1])
        for block in text.strip().split("\n\n")
    ]
    kinds = [k for k, _ in events]
    assert kinds[0] == "queue" and json.loads(events[0][1]) == {"position": 0}
    assert kinds[-1] == "done" and json.loads(events[-1][1])["status"] == "succeeded"
    assert "logs" in kinds
    assert app.http.get("/v1/jobs/nope/events").status_code == 404


def test_async_client(app: App) -> None:
    import asyncio

    async def main() -> tuple[Any, Any]:
        client = app.client(app.token)
        model = await client.models.async_get("fofr/sticker-maker")
        created = await client.models.predictions.async_create(
            model="fofr/sticker-maker", input={"prompt": "x"}
        )
        return model, created

    model, created = asyncio.run(main())
    assert model.latest_version.id == V2_ID and created.status == "starting"


# -- files as inputs -----------------------------------------------------------------------


def _png_file(tmp_path: Path, size: int = 64) -> Path:
    path = tmp_path / "cat.png"
    Image.new("RGB", (size, size), (200, 30, 30)).save(path)
    return path


def test_files_create_get_list_delete(app: App, tmp_path: Path) -> None:
    path = _png_file(tmp_path)
    created = app.replicate.files.create(path, metadata={"for": "stickers"})
    assert (created.name, created.content_type, created.size) == (
        "cat.png",
        "image/png",
        path.stat().st_size,
    )
    assert created.metadata == {"for": "stickers"} and len(created.checksums["sha256"]) == 64
    assert created.urls["get"] == f"{app.root}/v1/files/{created.id}"
    assert app.replicate.files.get(created.id).checksums == created.checksums
    assert [f.id for f in app.replicate.files.list()] == [created.id]
    download = app.http.get(f"/v1/files/{created.id}/download")
    assert download.content == path.read_bytes()
    other = app.client(app.svc.keys.create(credits=1).secret)
    with pytest.raises(ReplicateError) as err:
        other.files.get(created.id)
    assert err.value.status == 404
    assert app.replicate.files.delete(created.id) is True
    with pytest.raises(ReplicateError) as err:
        app.replicate.files.get(created.id)
    assert err.value.status == 404


def test_files_are_checked_like_image_uploads(app: App, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ReplicateError) as err:
        app.replicate.files.create(text)
    assert err.value.status == 422 and (err.value.detail or "").startswith(
        "content: is not an image"
    )
    with pytest.raises(ReplicateError) as err:
        app.replicate.files.create(_png_file(tmp_path), metadata=None)  # fine
        app.replicate.files.create(io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * 100))
    assert err.value.status == 422 and (err.value.detail or "").startswith("content:")


def test_files_expire_with_retention(app: App, tmp_path: Path) -> None:
    from sticker_maker.accounts.retention import sweep

    created = app.replicate.files.create(_png_file(tmp_path))
    retention = app.svc.settings.retention_seconds
    sweep(app.svc.db, app.svc.storage, retention, now=time.time() + retention + 1)
    with pytest.raises(ReplicateError) as err:
        app.replicate.files.get(created.id)
    assert err.value.status == 404


class ImageHost:
    """A local web server with one PNG (127.0.0.1 is an allowed network in these tests)."""

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/cat.png":
                    self.send_response(302)
                    self.send_header("Location", "/cat.png")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_image_inputs_by_url(app: App, tmp_path: Path) -> None:
    import base64

    path = _png_file(tmp_path)
    uploaded = app.replicate.files.create(path).urls["get"]
    data_url = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    host = ImageHost(path.read_bytes())
    try:
        for value in (uploaded, data_url, f"{host.url}/cat.png"):
            r = app.http.post("/v1/cutouts", files={"image": (None, value)})
            assert r.status_code == 201, r.text
            assert r.json()["input"]["width"] == 64
        refused = {
            f"{host.url}/elsewhere": "image: could not be fetched: the server answered HTTP 302",
            "http://10.1.2.3/cat.png": "image: cannot be fetched: refused: 10.1.2.3 is a private",
            "ftp://example.com/cat.png": "image: must be an image file, a data: URL or an http",
            "data:image/png,rawbytes": "image: must be a base64 data: URL",
            f"{app.root}/v1/files/nope": "image: names no file of yours here",
        }
        for value, message in refused.items():
            r = app.http.post("/v1/splits", files={"image": (None, value)})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith(message), r.json()
    finally:
        host.server.shutdown()
    other = httpx.post(
        f"{app.root}/v1/cutouts",
        files={"image": (None, uploaded)},
        headers={"authorization": f"Bearer {app.svc.keys.create(credits=10).secret}"},
    )
    assert other.status_code == 400 and "no file of yours" in other.json()["error"]["message"]


def test_retention_removes_a_predictions_data_and_keeps_its_record(app: App) -> None:
    from sticker_maker.accounts.retention import RECORD_SECONDS, sweep

    prediction = app.replicate.models.predictions.create(
        model="fofr/sticker-maker", input={"prompt": "a secret"}
    )
    app.play_worker()
    native = app.http.post("/v1/jobs", json={"prompt": "x"}).json()["id"]
    app.play_worker()
    output = app.replicate.predictions.get(prediction.id).output
    retention = app.svc.settings.retention_seconds
    later = time.time() + retention + 1
    sweep(app.svc.db, app.svc.storage, retention, now=later)
    removed = app.replicate.predictions.get(prediction.id)
    assert (removed.status, removed.output, removed.input) == ("succeeded", None, {})
    body = app.http.get(f"/v1/predictions/{prediction.id}").json()
    assert body["data_removed"] is True and body["logs"] == ""
    assert "a secret" not in json.dumps(app.http.get(f"/v1/jobs/{prediction.id}").json())
    assert httpx.get(output[0]).status_code == 404  # its files are gone
    assert app.http.get(f"/v1/jobs/{native}").status_code == 404  # native jobs: deleted
    sweep(app.svc.db, app.svc.storage, retention, now=later)  # idempotent
    assert app.http.get(f"/v1/predictions/{prediction.id}").json()["data_removed"] is True
    sweep(app.svc.db, app.svc.storage, retention, now=later + RECORD_SECONDS)
    assert app.http.get(f"/v1/predictions/{prediction.id}").status_code == 404


# -- the README ------------------------------------------------------------------------------


def _readme_blocks(language: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Replicate-compatible API", 1)[1].split("\n### ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_examples_run_as_written(app: App) -> None:
    """Every example of the README's Replicate section, as written (only the address and key
    are this server's), against the routes; the test finishes each job as the worker would
    (the real worker runs the same calls in test_replicate_client.py)."""
    exports, curl = _readme_blocks("bash")
    (python,) = _readme_blocks("python")
    env = {**os.environ, "KEY": app.token}
    for line in exports.strip().splitlines():  # export NAME=VALUE
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.replace("$KEY", app.token).replace("http://127.0.0.1:8000", app.root)
    stop = app.auto_worker()
    try:
        done = subprocess.run(
            [sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        answer = subprocess.run(
            ["bash", "-c", curl], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        stop.set()
    printed = done.stdout.splitlines()
    assert printed[0].count(f"{app.root}/files/") == 2 and ".png" in printed[0]
    assert printed[1].startswith("succeeded [") and printed[1].endswith(" 1.25")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["status"] == "succeeded"
    asked = [j["input"] for j in app.http.get("/v1/jobs").json()["jobs"]]
    assert {(i["width"], i["height"]) for i in asked} == {(512, 512)}
