"""The upload and export routes at the HTTP edge, in-process (no worker): odd requests get
a 4xx naming the field, never a 500, and leave nothing behind."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("edges") / "home"
    app = create_app(Settings.load(home), run_worker=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = "Bearer " + app.state.services.keys.create(credits=1000).secret
        c.home = home  # type: ignore[attr-defined]
        yield c


def png(size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _raw(client: TestClient, body: bytes, content_type: str | bytes) -> int:
    r = client.post("/v1/cutouts", content=body, headers={"Content-Type": content_type})
    assert r.status_code < 500, r.text
    if r.status_code == 400:
        assert r.json()["error"]["fields"][0]["field"] in ("image", "body")
    return r.status_code


def test_odd_multipart_requests_are_4xx(client: TestClient) -> None:
    image = png()
    part = (
        b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + image + b"\r\n"
    )
    cases = [
        (b"", "multipart/form-data"),  # no boundary
        (b"garbage", "multipart/form-data; boundary=XyZ"),
        (part, "multipart/form-data; boundary=XyZ"),  # no closing boundary
        (part + part + b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ"),  # two files
        (b"image=abc", "application/x-www-form-urlencoded"),
        (image, "image/png"),
        (b"\xff\xfe" * 10, b"multipart/form-data; boundary=\xff"),
    ]
    for body, content_type in cases:
        assert _raw(client, body, content_type) == 400, (body[:40], content_type)
    long_field = {"border": "1" * 5000}
    r = client.post("/v1/cutouts", files={"image": ("a.png", image)}, data=long_field)
    assert r.status_code == 400
    many = {f"f{i}": "1" for i in range(40)}
    r = client.post("/v1/splits", files={"image": ("a.png", image)}, data=many)
    assert r.status_code == 400
    r = client.post("/v1/cutouts", files={"image": ("a.png", image), "border": ("b", b"3")})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] in ("image", "border")


def test_upload_options_blank_means_default(client: TestClient) -> None:
    r = client.post(
        "/v1/cutouts",
        files={"image": ("a.png", png((40, 24)))},
        data={"border": "", "shadow": "true", "trim": "0", "remover": "none"},
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "cutout" and job["status"] == "queued"
    assert job["input"]["border"] is None and job["input"]["shadow"] is True
    assert job["input"]["trim"] is False and job["input"]["remover"] == "none"
    assert (job["input"]["width"], job["input"]["height"]) == (40, 24)
    assert job["input"]["image"].startswith("http://testserver/files/")
    assert job["progress"] == {"step": 0, "total": 3}


def test_exif_rotation_gives_the_upright_size(client: TestClient) -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn
    Image.new("RGB", (60, 20), "white").save(buf, "JPEG", exif=exif)
    r = client.post("/v1/cutouts", files={"image": ("a.jpg", buf.getvalue())})
    assert r.status_code == 201, r.text
    assert (r.json()["input"]["width"], r.json()["input"]["height"]) == (20, 60)


@pytest.mark.parametrize("n", ["²", "-1", "1e3", "9999999", "%20"])
def test_odd_output_index_is_400(client: TestClient, n: str) -> None:
    job = client.post("/v1/cutouts", files={"image": ("a.png", png())}).json()
    r = client.get(f"/v1/jobs/{job['id']}/outputs/{n}/export/png")
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "n"


def test_unknown_job_and_bad_pack_bodies(client: TestClient) -> None:
    r = client.get("/v1/jobs/nope/outputs/0/export/png")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for body in ([], {"stickers": "x"}, {"stickers": [{"job_id": "a"}] * 3}, "null"):
        r = client.post("/v1/exports/whatsapp-pack", json=body)
        assert r.status_code == 400, r.text
        assert "error" in r.json() and "fields" in r.json()["error"]
    r = client.post(
        "/v1/exports/whatsapp-pack",
        json={"stickers": [{"job_id": "nope", "output": 0}] * 3, "name": "a", "publisher": "b"},
    )
    assert r.status_code == 404


def test_rejected_uploads_store_nothing(client: TestClient) -> None:
    files = Path(client.home) / "files"  # type: ignore[attr-defined]
    before = sorted(p.name for p in files.rglob("*") if p.is_file())
    r = client.post("/v1/cutouts", files={"image": ("a.png", png())}, data={"preset": "nope"})
    assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "preset"
    assert sorted(p.name for p in files.rglob("*") if p.is_file()) == before


def test_upload_jobs_are_billed_and_retention_deletes_the_upload(
    client: TestClient, tmp_path: Path
) -> None:
    """Reserve at submit, settle the measured time, then retention takes the upload too."""
    from sqlalchemy import select, update

    from sticker_maker.accounts.retention import sweep
    from sticker_maker.db import jobs, ledger
    from sticker_maker.worker.predictor import Predictor

    svc = client.app.state.services  # type: ignore[attr-defined]
    secret = svc.keys.create(credits=100).secret
    headers = {"Authorization": f"Bearer {secret}"}
    image = Image.new("RGB", (48, 48), "white")
    image.paste((200, 30, 30), (12, 12, 36, 36))
    r = client.post("/v1/cutouts", headers=headers, files={"image": ("a.png", _encode(image))})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    account = client.get("/v1/account", headers=headers).json()
    assert 30 <= account["reserved"] < 31 and account["balance"] == 100 - account["reserved"]

    # play the worker with the real predictor (presets only: no engine needed)
    while (job := svc.jobs.claim_next("test")) is not None and job.id != job_id:
        svc.jobs.fail(job, "not this test's")
    assert job is not None
    upload = job.input_files[0]
    predictor = Predictor()
    predictor.prepare(None)
    (sticker,) = predictor.run(
        "cutout", job.input.model_dump_json(), svc.storage.get(upload), on_progress=print
    )
    assert sticker.image_png is None and sticker.files()[0][0] == "sticker"
    from sticker_maker.jobs import OutputFile
    from sticker_maker.storage import new_file_name

    name = new_file_name("png")
    svc.storage.put(name, sticker.sticker_png)
    output = OutputFile(name, "sticker", 0, 0, sticker.sticker_width, sticker.sticker_height)
    assert svc.jobs.complete(job, [output], 0.5)
    with svc.db.read() as conn:
        kinds = dict(
            conn.execute(
                select(ledger.c.kind, ledger.c.amount).where(ledger.c.job_id == job_id)
            ).all()
        )
    assert kinds["settle"] == -0.5 and kinds["refund"] == -kinds["reserve"]

    assert svc.storage.path(upload) is not None
    with svc.db.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(completed_at=0.0))
    sweep(svc.db, svc.storage, 3600)
    assert svc.storage.path(upload) is None and svc.storage.path(name) is None
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 404


def test_upload_jobs_need_no_torch(tmp_path: Path) -> None:
    """The predictor runs cutout and split jobs with the finishing stack alone."""
    import subprocess
    import sys

    from sticker_maker.inputs import CutoutInput, SplitInput

    common = {"preset": "sticker-maker", "image": "x.png", "width": 64, "height": 64}
    common |= {"content_type": "image/png", "remover": "auto"}
    sheet = Image.new("RGB", (96, 64), "white")
    sheet.paste((200, 30, 30), (8, 8, 40, 56))
    sheet.paste((30, 30, 200), (56, 8, 88, 56))
    (tmp_path / "sheet.png").write_bytes(_encode(sheet))
    code = f"""
import sys
from pathlib import Path
from sticker_maker.worker.predictor import Predictor
p = Predictor()
p.prepare(None)
data = Path({str(tmp_path / "sheet.png")!r}).read_bytes()
cut = p.run("cutout", {CutoutInput(**common, border=3).model_dump_json()!r}, data,
            on_progress=lambda s, t: None)
parts = p.run("split", {SplitInput(**common).model_dump_json()!r}, data,
              on_progress=lambda s, t: None)
heavy = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
print(len(cut), len(parts), heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["1", "2", "[]"], done.stdout + done.stderr


def _encode(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_a_preset_model_remover_reaches_the_worker(tmp_path: Path, tiny_onnx: Path) -> None:
    """``background_remover = <model>`` means method "model" with it; "auto" falls back to it."""
    from sticker_maker.inputs import CutoutInput, resolve_remover
    from sticker_maker.presets import load_presets
    from sticker_maker.worker.predictor import Predictor

    presets = tmp_path / "presets.toml"
    presets.write_text(f'[presets.onnx]\nbase = "x"\nbackground_remover = "{tiny_onnx}"\n')
    preset = load_presets(presets).get("onnx")
    assert resolve_remover(preset, None, "remover") == "model"
    assert resolve_remover(preset, "auto", "remover") == "auto"
    predictor = Predictor()
    predictor.prepare(str(presets))
    image = Image.new("RGB", (64, 64), "white")
    image.paste((20, 120, 60), (16, 16, 48, 48))
    job = CutoutInput(
        preset="onnx",
        image="x.png",
        width=64,
        height=64,
        content_type="image/png",
        remover="model",
        border=0,
    )
    lines: list[str] = []
    (sticker,) = predictor.run(
        "cutout", job.model_dump_json(), _encode(image), on_progress=print, log=lines.append
    )
    assert any("learned model" in line for line in lines), lines
    assert "cut-out (model)" in "\n".join(lines)
    assert sticker.sticker_png.startswith(b"\x89PNG")


def test_child_runs_upload_jobs_when_the_engine_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No engine (no torch, bad weights…): generation jobs fail with why, uploads still run."""
    import multiprocessing as mp
    import threading

    from sticker_maker.inputs import CutoutInput
    from sticker_maker.worker import predictor as predictor_mod
    from sticker_maker.worker.child import child_main

    def broken_setup(self: object, *args: object, **kwargs: object) -> None:
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(predictor_mod.Predictor, "setup", broken_setup)
    parent, child = mp.Pipe()
    thread = threading.Thread(target=child_main, args=(child, threading.Event(), {}), daemon=True)
    thread.start()
    assert parent.recv() == ("ready",)
    parent.send(("predict", "g", "generate", "{}", None))
    kind, message, _ = parent.recv()
    assert kind == "error" and "No module named 'torch'" in message
    image = Image.new("RGB", (48, 48), "white")
    image.paste((200, 30, 30), (12, 12, 36, 36))
    job = CutoutInput(
        preset="sticker-maker",
        image="x.png",
        width=48,
        height=48,
        content_type="image/png",
        remover="auto",
    )
    parent.send(("predict", "c", "cutout", job.model_dump_json(), _encode(image)))
    messages = []
    while not messages or messages[-1][0] not in ("done", "error"):
        messages.append(parent.recv())
    assert messages[-1][0] == "done", messages[-1]
    (sticker,) = messages[-1][1]
    assert sticker.image_png is None and sticker.sticker_width < 48
    assert ("progress", 3, 3) in messages
    parent.send(("stop",))
    thread.join(5)
