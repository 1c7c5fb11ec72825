"""Input bounds: body size (413), every field's range (400 naming it), image inputs."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import pytest
from PIL import Image

from accounts.helpers import PNG, Client, bearer
from sticker_maker.bounds import MAX_IMAGE_PIXELS, check_image, image_from_base64
from sticker_maker.errors import InvalidInput


def test_oversized_body_is_413_in_each_envelope(make_client) -> None:
    client: Client = make_client(max_request_bytes=10_000)
    key = client.new_key()
    big = {"prompt": "x" * 20_000}
    native = client.post("/v1/jobs", headers=bearer(key), json=big)
    assert native.status_code == 413 and native.json()["error"]["code"] == "payload_too_large"
    seed = client.post(
        "/api/v1/generate", headers={"apikey": key}, json={"mid": 3123, "input": big}
    )
    assert seed.status_code == 413 and seed.json()["status_code"] == "error"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 1000

    for path in ("/v1/jobs", "/api/v1/generate"):
        r = client.post(path, headers={**bearer(key), "apikey": key}, content=chunks())
        assert r.status_code == 413, (path, r.text)
    assert client.get("/v1/jobs", headers=bearer(key)).json()["jobs"] == []


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"steps": 101}, "steps", "must be ≤ 100"),
        ({"samples": 5}, "samples", "must be ≤ 4"),
        ({"width": 2056}, "width", "must be ≤ 2048"),
        ({"height": 1020}, "height", "multiple of 8"),
        ({"prompt": "x" * 2001}, "prompt", "longer than 2000"),
        ({"prompt": "a\x00b"}, "prompt", "NUL"),
        ({"prompt": "\ud800"}, "prompt", "unicode"),
        ({"negative_prompt": "y" * 2001}, "negative_prompt", "longer than 2000"),
        ({"preset": "p" * 300}, "preset", "longer than 200"),
        ({"guidance_scale": 31}, "guidance_scale", "must be ≤ 30"),
        ({"upscale_steps": 51}, "upscale_steps", "must be ≤ 50"),
        ({"seed": 2**32}, "seed", "must be ≤ 4294967295"),
    ],
)
def test_every_field_is_bounded(client: Client, fields: dict, field: str, fragment: str) -> None:
    key = client.new_key()
    body = json.dumps({"prompt": "x", **fields}).encode()  # ASCII: escapes even lone surrogates
    r = client.post(
        "/v1/jobs", headers={**bearer(key), "content-type": "application/json"}, content=body
    )
    assert r.status_code == 400, r.text
    named = {f["field"]: f["message"] for f in r.json()["error"]["fields"]}
    assert fragment in named[field]


def test_absurd_json_is_400_not_500(client: Client) -> None:
    key = client.new_key()
    deep = b"[" * 100_000 + b"]" * 100_000
    for path in ("/v1/jobs", "/api/v1/generate"):
        r = client.post(path, headers={**bearer(key), "apikey": key}, content=deep)
        assert r.status_code == 400, (path, r.status_code)
        r = client.post(path, headers={**bearer(key), "apikey": key}, content=b"\xff\xfe{")
        assert r.status_code == 400


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression-bomb shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + PNG[33:]
    )


def test_image_inputs_are_checked_from_their_header() -> None:
    assert check_image(PNG) == (64, 64, "PNG")
    with pytest.raises(InvalidInput, match="image: is 5000x5000"):
        check_image(_png_header(5000, 5000))
    with pytest.raises(InvalidInput, match=f"more than {MAX_IMAGE_PIXELS}"):
        check_image(_png_header(100_000, 100_000))
    with pytest.raises(InvalidInput, match="not an image"):
        check_image(b"GIF89a not really", "init_image")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="BMP")
    with pytest.raises(InvalidInput, match="allowed: PNG, JPEG, WEBP"):
        check_image(buf.getvalue())
    with pytest.raises(InvalidInput, match="bytes; the limit"):
        check_image(b"\0" * (6 * 1024 * 1024))
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert image_from_base64(data_url) == PNG
    with pytest.raises(InvalidInput, match="base64"):
        image_from_base64("!!!")
