"""Uploads are stored re-encoded: the pixels only, none of the file's other chunks."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings.load(tmp_path / "home"), run_worker=False, run_background=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = "Bearer " + app.state.services.keys.create(credits=1000).secret
        c.app_state = app.state  # type: ignore[attr-defined]
        yield c


def chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kinds.append(data[at + 4 : at + 8].decode())
        at += 12 + length
    return kinds


def stored(client: TestClient, job_id: str) -> bytes:
    svc = client.app_state.services  # type: ignore[attr-defined]
    name = svc.jobs.get(job_id).input.image
    return svc.storage.get(name)


def test_a_15_mb_text_chunk_is_not_stored(client: TestClient) -> None:
    image = Image.new("RGBA", (48, 40), (10, 200, 30, 255))
    image.putpixel((5, 5), (0, 0, 0, 0))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * (15 * 1024 * 1024))  # tEXt, uncompressed
    info.add_text("Secret", "hidden", zip=True)  # zTXt
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    upload = buf.getvalue() + b"trailing payload after IEND"
    assert len(upload) > 15 * 1024 * 1024 and "tEXt" in chunks(buf.getvalue())

    r = client.post("/v1/cutouts", files={"image": ("big.png", upload)})
    assert r.status_code == 201, r.text
    data = stored(client, r.json()["id"])
    assert len(data) < 10_000  # not 15 MB
    assert chunks(data) == ["IHDR", "IDAT", "IEND"]
    assert not data.endswith(b"trailing payload after IEND")
    with Image.open(io.BytesIO(data)) as clean:
        assert clean.mode == "RGBA" and clean.size == (48, 40)
        assert clean.tobytes() == image.tobytes()  # the same pixels
        assert not clean.text


def test_a_jpeg_is_stored_upright_without_its_exif(client: TestClient) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn
    exif[0x010E] = "a description"
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), "white").save(buf, "JPEG", exif=exif, quality=95)
    r = client.post("/v1/cutouts", files={"image": ("a.jpg", buf.getvalue())})
    assert r.status_code == 201, r.text
    assert r.json()["input"]["content_type"] == "image/png"
    data = stored(client, r.json()["id"])
    assert chunks(data) == ["IHDR", "IDAT", "IEND"]
    with Image.open(io.BytesIO(data)) as clean:
        assert clean.size == (20, 60) and clean.mode == "RGB"
        assert not clean.getexif()
