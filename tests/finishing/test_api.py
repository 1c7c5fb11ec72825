"""The finishing routes through a real server and its worker: upload jobs, exports, packs,
finishing options on generation jobs, and every way an upload can be refused."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
import zlib
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import RunningServer
from PIL import Image

from .helpers import alpha_of, composite, iou, star, supersampled_mask

pytestmark = pytest.mark.slow

KB = 1024


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def post_upload(
    server: RunningServer, key: str, path: str, data: bytes, **fields: str
) -> httpx.Response:
    files = {"image": ("upload.png", data, "application/octet-stream")}
    return httpx.post(
        f"{server.url}{path}", headers=auth(key), files=files, data=fields, timeout=60
    )


def wait(server: RunningServer, key: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth(key)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")


def fetch(url: str) -> Image.Image:
    r = httpx.get(url)
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(r.content))


def field_error(r: httpx.Response, status: int = 400) -> tuple[str, str]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    return error["fields"][0]["field"] if "fields" in error else "", error["message"]


def star_image(size: int = 160) -> Image.Image:
    alpha = supersampled_mask((size, size), lambda c, s: star(c, s, (size // 2, size // 2), 60))
    fg = np.broadcast_to(np.array([230.0, 90.0, 40.0]), (size, size, 3))
    return composite(fg, alpha, np.full((size, size, 3), 255.0))


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.new_key()


@pytest.fixture(scope="module")
def star_job(server: RunningServer, key: str) -> dict:
    """A finished cutout job of a synthetic star (default options: border, trimmed)."""
    r = post_upload(server, key, "/v1/cutouts", encode(star_image()), shadow="false")
    assert r.status_code == 201, r.text
    job = wait(server, key, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_cutout_job_of_a_noto_case_matches_ground_truth(
    server: RunningServer, key: str, noto: Path
) -> None:
    size = 256
    image = Image.open(noto / "composite" / "case005_color.png").resize((size, size))
    truth = cv2.resize(
        np.asarray(Image.open(noto / "composite" / "case005_alpha.png").convert("L")),
        (size, size),
        interpolation=cv2.INTER_AREA,
    )
    data = encode(image.convert("RGB"), "JPEG")
    r = post_upload(server, key, "/v1/cutouts", data, border="0", trim="false")
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "cutout" and created["status"] in ("queued", "running")
    assert created["input"]["width"] == created["input"]["height"] == size
    assert created["input"]["content_type"] == "image/png"  # stored re-encoded
    assert created["input"]["remover"] == "auto"  # the preset's default, filled in
    assert (created["input"]["border"], created["input"]["trim"]) == (0, False)
    upload = httpx.get(created["input"]["image"])  # the stored upload: its pixels, as PNG
    assert upload.status_code == 200 and upload.content.startswith(b"\x89PNG")
    sent = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(upload.content)).convert("RGB")), sent)

    job = wait(server, key, created["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["step"] == job["progress"]["total"] == 3
    assert "cut-out (model-free)" in job["logs"]
    assert job["metrics"]["predict_time"] > 0
    (output,) = job["output"]
    assert (output["kind"], output["index"], output["width"], output["height"]) == (
        "sticker",
        0,
        size,
        size,
    )
    sticker = fetch(output["url"])
    assert sticker.mode == "RGBA" and sticker.size == (size, size)
    assert iou(alpha_of(sticker) >= 128, truth >= 128) >= 0.95


def test_split_job_of_a_noto_sheet_gives_each_sticker(
    server: RunningServer, key: str, noto: Path
) -> None:
    sheet = noto / "sheet" / "sheet001.png"
    expected = len(list(sheet.parent.glob("sheet001_mask*.png")))
    data = encode(Image.open(sheet).resize((384, 384), Image.Resampling.LANCZOS))
    r = post_upload(server, key, "/v1/splits", data, border="4")
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "split" and r.json()["input"]["border"] == 4
    job = wait(server, key, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert len(job["output"]) == expected == 7
    assert [o["index"] for o in job["output"]] == list(range(expected))
    assert {o["kind"] for o in job["output"]} == {"sticker"}
    assert f"split into {expected} sticker(s)" in job["logs"]
    first = fetch(job["output"][0]["url"])
    a = alpha_of(first)
    assert a[0].max() == 0 and a[-1].max() == 0  # trimmed with a transparent margin
    assert first.size == (job["output"][0]["width"], job["output"][0]["height"])


def test_cutout_with_a_border_finishes_the_sticker(star_job: dict) -> None:
    assert star_job["input"]["border"] is None and star_job["input"]["trim"] is True
    (output,) = star_job["output"]
    sticker = np.asarray(fetch(output["url"]))
    a = sticker[..., 3]
    assert a[0].max() == 0 and a[:, 0].max() == 0  # even transparent margin
    assert sticker.shape[0] < 160 and sticker.shape[1] < 160  # trimmed to the star
    # the border: opaque white pixels just around the orange star
    white = (a >= 128) & (sticker[..., :3].min(axis=2) >= 250)
    assert white.sum() > 500
    assert "die-cut: border in proportion to the size, trimmed" in star_job["logs"]


def test_auto_without_a_model_says_so_in_the_logs(server: RunningServer, key: str) -> None:
    rng = np.random.default_rng(1)
    texture = cv2.resize(rng.uniform(0, 255, (24, 24, 3)).astype(np.uint8), (128, 128))
    texture = cv2.add(texture, rng.integers(0, 60, (128, 128, 3), dtype=np.uint8))
    r = post_upload(server, key, "/v1/cutouts", encode(Image.fromarray(texture)))
    assert r.status_code == 201, r.text
    job = wait(server, key, r.json()["id"])
    assert "no model configured" in job["logs"], job["logs"]


def test_exports_meet_their_sizes_and_limits(
    server: RunningServer, key: str, star_job: dict
) -> None:
    base = f"{server.url}/v1/jobs/{star_job['id']}/outputs/0/export"
    original = fetch(star_job["output"][0]["url"])

    def get(target: str) -> httpx.Response:
        r = httpx.get(f"{base}/{target}", headers=auth(key), timeout=60)
        assert r.status_code == 200, r.text
        disposition = r.headers["content-disposition"]
        assert disposition.startswith("attachment; filename=") and target in disposition
        return r

    expected = {
        "whatsapp": ("image/webp", "WEBP", (512, 512), 100 * KB),
        "whatsapp_tray": ("image/png", "PNG", (96, 96), 50 * KB),
        "discord": ("image/png", "PNG", (320, 320), 512 * KB),
    }
    for target, (media, fmt, size, limit) in expected.items():
        r = get(target)
        image = Image.open(io.BytesIO(r.content))
        assert r.headers["content-type"] == media
        assert (image.format, image.size, image.mode) == (fmt, size, "RGBA")
        assert len(r.content) <= limit
    telegram = get("telegram")
    image = Image.open(io.BytesIO(telegram.content))
    assert max(image.size) == 512 and len(telegram.content) <= 512 * KB
    assert telegram.headers["content-type"] == f"image/{image.format.lower()}"
    for target in ("png", "webp"):
        image = Image.open(io.BytesIO(get(target).content))
        assert np.array_equal(np.asarray(image.convert("RGBA")), np.asarray(original))
    printed = Image.open(io.BytesIO(get("print_png").content))
    assert round(printed.info["dpi"][0]) == 300 and printed.size == original.size
    svg = get("print_svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert 'id="cut-line"' in svg.text and f'viewBox="0 0 {original.width}' in svg.text


def test_export_errors(server: RunningServer, key: str, star_job: dict) -> None:
    base = f"{server.url}/v1/jobs/{star_job['id']}/outputs"
    field, message = field_error(httpx.get(f"{base}/0/export/gif", headers=auth(key)))
    assert field == "target" and "allowed: png, webp, telegram, whatsapp" in message
    assert "print_svg" in message
    field, _ = field_error(httpx.get(f"{base}/x/export/png", headers=auth(key)))
    assert field == "n"
    r = httpx.get(f"{base}/5/export/png", headers=auth(key))
    assert r.status_code == 404 and "no sticker with index 5" in r.json()["error"]["message"]
    other = server.new_key()
    r = httpx.get(f"{base}/0/export/png", headers=auth(other))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{base}/0/export/png").status_code == 401


def test_whatsapp_pack(server: RunningServer, key: str, star_job: dict) -> None:
    url = f"{server.url}/v1/exports/whatsapp-pack"
    item = {"job_id": star_job["id"], "output": 0}
    body = {"stickers": [item] * 3, "name": "Stars", "publisher": "tests"}
    r = httpx.post(url, headers=auth(key), json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="Stars.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert sorted(zf.namelist()) == [
            "01.webp",
            "02.webp",
            "03.webp",
            "contents.json",
            "tray.png",
        ]
        pack = json.loads(zf.read("contents.json"))["sticker_packs"][0]
        assert (pack["name"], pack["publisher"], pack["tray_image_file"]) == (
            "Stars",
            "tests",
            "tray.png",
        )
        assert [s["image_file"] for s in pack["stickers"]] == ["01.webp", "02.webp", "03.webp"]
        tray = Image.open(io.BytesIO(zf.read("tray.png")))
        assert tray.size == (96, 96) and len(zf.read("tray.png")) <= 50 * KB
        for name in ("01.webp", "02.webp", "03.webp"):
            raw = zf.read(name)
            assert Image.open(io.BytesIO(raw)).size == (512, 512) and len(raw) <= 100 * KB

    for count in (2, 31):
        field, message = field_error(
            httpx.post(url, headers=auth(key), json={**body, "stickers": [item] * count})
        )
        assert field == "stickers" and "3 to 30" in message and f"got {count}" in message
    other = server.new_key()
    r = httpx.post(url, headers=auth(other), json=body)
    assert r.status_code == 404 and "stickers.0" in r.json()["error"]["message"]
    field, _ = field_error(httpx.post(url, headers=auth(key), json={**body, "name": ""}))
    assert field == "name"


def _job_count(server: RunningServer, key: str) -> int:
    return len(httpx.get(f"{server.url}/v1/jobs", headers=auth(key)).json()["jobs"])


def _bomb_png(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_bad_uploads_are_refused_naming_the_field(server: RunningServer, key: str) -> None:
    before = _job_count(server, key)
    files_before = sum(1 for p in (server.home / "files").rglob("*") if p.is_file())
    good = encode(star_image(64))

    cases: list[tuple[httpx.Response, str, str]] = []
    for path in ("/v1/cutouts", "/v1/splits"):
        cases += [
            (post_upload(server, key, path, b"not an image at all"), "image", "not an image"),
            (post_upload(server, key, path, good[: len(good) // 2]), "image", "decoded"),
            (post_upload(server, key, path, _bomb_png(100_000, 100_000)), "image", "pixels"),
            (post_upload(server, key, path, encode(Image.new("RGB", (5000, 20)))), "image", "4096"),
            (post_upload(server, key, path, encode(Image.new("RGB", (8, 8)))), "image", "16"),
            (post_upload(server, key, path, encode(star_image(64), "GIF")), "image", "allowed"),
            (post_upload(server, key, path, good, border="-1"), "border", "≥ 0"),
            (post_upload(server, key, path, good, border="wide"), "border", "integer"),
            (post_upload(server, key, path, good, remover="magic"), "remover", "'auto'"),
            (post_upload(server, key, "/v1/cutouts", good, holes="fill"), "holes", "'keep'"),
            (post_upload(server, key, path, good, remover="model"), "remover", "learned"),
            (post_upload(server, key, path, good, colour="red"), "colour", "not a known"),
            (post_upload(server, key, path, good, preset="nope"), "preset", "unknown preset"),
        ]
    cases.append(
        (
            post_upload(server, key, "/v1/cutouts", b"\x89PNG" + b"\0" * (20 * 2**20)),
            "image",
            "20 MiB",
        )
    )
    not_a_form = httpx.post(f"{server.url}/v1/cutouts", headers=auth(key), json={"image": "x"})
    cases.append((not_a_form, "image", "multipart/form-data"))
    no_file = httpx.post(
        f"{server.url}/v1/cutouts", headers=auth(key), files={"other": ("a.png", good)}
    )
    cases.append((no_file, "image", "is required"))
    for response, field, fragment in cases:
        got_field, message = field_error(response)
        assert (got_field, fragment in message) == (field, True), (field, fragment, message)
    assert _job_count(server, key) == before  # nothing queued
    assert sum(1 for p in (server.home / "files").rglob("*") if p.is_file()) == files_before
    assert httpx.post(f"{server.url}/v1/cutouts", files={"image": ("a", good)}).status_code == 401


def test_generation_finishing_options(server: RunningServer, key: str) -> None:
    def submit(finishing: dict | None) -> dict:
        body: dict = {"prompt": "cute cat", "preset": "tiny", "seed": 11, "steps": 2}
        if finishing is not None:
            body["finishing"] = finishing
        r = httpx.post(f"{server.url}/v1/jobs", headers=auth(key), json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def sticker_of(created: dict) -> tuple[dict, np.ndarray]:
        job = wait(server, key, created["id"])
        assert job["status"] == "succeeded", job
        image, sticker = job["output"]
        assert (image["kind"], sticker["kind"]) == ("image", "sticker")
        pixels = np.asarray(fetch(sticker["url"]))
        assert pixels.shape[:2] == (sticker["height"], sticker["width"])
        return job, pixels

    jobs = [submit({"border": 0}), submit({"border": 6}), submit({"border": 0, "shadow": True})]
    # exports need a succeeded job: this one is queued behind the others
    r = httpx.get(f"{server.url}/v1/jobs/{jobs[2]['id']}/outputs/0/export/png", headers=auth(key))
    assert r.status_code == 409 and "succeeded" in r.json()["error"]["message"]
    assert jobs[0]["input"]["finishing"] == {
        "remover": "auto",  # the preset's, filled in
        "border": 0,
        "shadow": False,
        "trim": True,
        "holes": "auto",
    }
    (bare_job, bare), (_, bordered), (_, shadowed) = (sticker_of(j) for j in jobs)
    # same seed, same subject: the border grows the trimmed canvas on every side
    assert bare.shape[0] < 64 or bare.shape[1] < 64  # trimmed to the subject
    assert bordered.shape[0] >= bare.shape[0] + 10 and bordered.shape[1] >= bare.shape[1] + 10
    a = bordered[..., 3]
    assert a[0].max() == a[-1].max() == a[:, 0].max() == a[:, -1].max() == 0  # margin
    assert (a == 255).sum() > (bare[..., 3] == 255).sum()
    soft = lambda px: int(((px[..., 3] > 0) & (px[..., 3] < 255)).sum())  # noqa: E731
    assert soft(shadowed) > soft(bare) + 50  # the shadow is semi-transparent
    assert shadowed.shape[0] > bare.shape[0]  # and falls below the sticker

    # exports name the sticker by its index (0: sample 0's sticker, the second output)
    base = f"{server.url}/v1/jobs/{bare_job['id']}/outputs"
    exported = httpx.get(f"{base}/0/export/png", headers=auth(key))
    assert exported.status_code == 200, exported.text
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(exported.content))), bare)
    r = httpx.get(f"{base}/1/export/png", headers=auth(key))
    assert r.status_code == 404 and "indexes (output[].index) are: 0" in r.text

    r = httpx.post(
        f"{server.url}/v1/jobs",
        headers=auth(key),
        json={"prompt": "x", "preset": "tiny", "finishing": {"border": 999, "glow": 1}},
    )
    assert r.status_code == 400
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"finishing.border", "finishing.glow"}
    field, message = field_error(
        httpx.post(
            f"{server.url}/v1/jobs",
            headers=auth(key),
            json={"prompt": "x", "preset": "tiny", "finishing": {"remover": "model"}},
        )
    )
    assert field == "finishing.remover" and "learned" in message


def ring_image(size: int = 200) -> Image.Image:
    """A green ring with a 70 px hole on white."""

    def draw(canvas: np.ndarray, s: int) -> None:
        c = size * s // 2
        cv2.circle(canvas, (c, c), 80 * s, 255, -1, cv2.LINE_AA)
        cv2.circle(canvas, (c, c), 35 * s, 0, -1, cv2.LINE_AA)

    alpha = supersampled_mask((size, size), draw)
    fg = np.broadcast_to(np.array([40.0, 120.0, 60.0]), (size, size, 3))
    return composite(fg, alpha, np.full((size, size, 3), 255.0))


def test_cutout_holes_option(server: RunningServer, key: str) -> None:
    ring = encode(ring_image())
    centres = {}
    for holes in ("auto", "keep", "cut"):
        r = post_upload(server, key, "/v1/cutouts", ring, holes=holes, border="0", trim="false")
        assert r.status_code == 201, r.text
        job = wait(server, key, r.json()["id"])
        assert job["status"] == "succeeded" and job["input"]["holes"] == holes, job
        centres[holes] = int(alpha_of(fetch(job["output"][0]["url"]))[100, 100])
    assert centres == {"auto": 0, "keep": 255, "cut": 0}
    # on generation jobs too: holes is a finishing option, echoed in the job's input
    body = {"prompt": "x", "preset": "tiny", "steps": 2, "finishing": {"holes": "keep"}}
    r = httpx.post(f"{server.url}/v1/jobs", headers=auth(key), json=body)
    assert r.status_code == 201 and r.json()["input"]["finishing"]["holes"] == "keep"
    body["finishing"] = {"holes": "sometimes"}
    field, message = field_error(httpx.post(f"{server.url}/v1/jobs", headers=auth(key), json=body))
    assert field == "finishing.holes" and "'keep'" in message


def test_seed_api_does_not_serve_upload_jobs(
    server: RunningServer, key: str, star_job: dict
) -> None:
    r = httpx.get(
        f"{server.url}/api/v1/result", params={"tid": star_job["id"]}, headers={"apikey": key}
    )
    assert r.status_code == 404 and r.json()["status_code"] == "error"
    assert "/v1/jobs/" in r.json()["message"]
