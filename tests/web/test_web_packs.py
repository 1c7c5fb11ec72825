"""The web page's "Make a pack" flow and its photo inputs, in Debian's chromium against the
shared real server (tiny models). Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningServer
from PIL import Image

from .browser import new_page, shot, wait_for_stickers

pytestmark = pytest.mark.slow


def _png_file(tmp_path: Path) -> Path:
    path = tmp_path / "me.png"
    Image.new("RGB", (64, 64), (200, 120, 80)).save(path)
    return path


def test_make_a_pack_and_download_it_for_each_app(
    browser: Any, shared_server: RunningServer, tmp_path: Path
) -> None:
    key = shared_server.new_key()
    page = new_page(browser, shared_server, key=key)
    page.click("#tab-pack")
    assert page.is_visible("#pack-form") and not page.is_visible("#generate-form")
    assert page.input_value("#pack-size") == "8"
    page.wait_for_function("() => document.querySelector('#pack-preset').options.length > 1")
    page.select_option("#pack-preset", "tiny")
    page.fill("#character", "a round robot")
    page.fill("#expressions", "happy, sad, eating pizza")
    page.click("#make-pack")
    batch = wait_for_stickers(page, 3, timeout=240_000)
    labels = [t.strip() for t in batch.locator(".card .seed").all_text_contents()]
    assert labels == ["😄 happy", "😢 sad", "🙂 eating pizza"]
    shot(page, "pack-01-made")
    assert page.errors == []

    with page.expect_download() as info:
        batch.locator("[data-pack-export='telegram']").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(str(path))
    assert path.name.endswith("-telegram.zip")
    with zipfile.ZipFile(path) as zf:
        lines = zf.read("emojis.txt").decode().splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            "😄 happy",
            "😢 sad",
            "🙂 eating pizza",
        ]
        first = Image.open(io.BytesIO(zf.read(lines[0].split()[0])))
        assert max(first.size) == 512

    with page.expect_download() as info:
        batch.locator("[data-pack-export='whatsapp']").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(str(path))
    with zipfile.ZipFile(path) as zf:
        pack = json.loads(zf.read("contents.json"))["sticker_packs"][0]
        assert [s["emojis"] for s in pack["stickers"]] == [["😄"], ["😢"], ["🙂"]]
        assert "tray.png" in zf.namelist()


def test_a_blank_expression_and_a_photo_the_style_cannot_use_are_named(
    browser: Any, shared_server: RunningServer, tmp_path: Path
) -> None:
    key = shared_server.new_key()
    page = new_page(browser, shared_server, key=key)
    page.click("#tab-pack")
    page.fill("#character", "a round robot")
    page.fill("#expressions", "happy, , sad")
    page.click("#make-pack")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.get_attribute("#expressions", "aria-invalid") == "true"
    assert "empty" in page.text_content("#expressions-error")

    # stickers of a photo, with a style that has no IP-Adapter: the photo field is named
    page.click("#tab-generate")
    page.select_option("#preset", "tiny")  # a style without an IP-Adapter
    page.fill("#prompt", "me as a sticker")
    page.click("#reference summary")
    page.set_input_files("#reference-file", str(_png_file(tmp_path)))
    page.fill("#likeness", "0.5")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.get_attribute("#reference-file", "aria-invalid") == "true"
    assert "cannot make stickers of a picture" in page.text_content("#reference-file-error")
    shot(page, "pack-02-photo-refused")
    assert page.errors == []


def test_a_photo_becomes_stickers_of_it(
    browser: Any, shared_server: RunningServer, tmp_path: Path
) -> None:
    """The describe form with a real photo (scikit-image's astronaut) and face-to-sticker:
    the job carries the picture as its reference, the face is found, stickers come back."""
    from skimage import data as skimage_data

    photo = tmp_path / "me.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    key = shared_server.new_key()
    page = new_page(browser, shared_server, key=key)
    page.wait_for_function("() => document.querySelector('#preset').options.length > 1")
    page.select_option("#preset", "face-to-sticker")
    page.fill("#prompt", "an astronaut, smiling")
    page.click("#reference summary")
    page.set_input_files("#reference-file", str(photo))
    page.click("#generate")
    batch = wait_for_stickers(page, 1, timeout=240_000)
    assert batch.locator(".card img").count() == 1
    shot(page, "photo-01-stickers-of-it")
    assert page.errors == []

    auth = {"Authorization": f"Bearer {key}"}
    (job,) = httpx.get(f"{shared_server.url}/v1/jobs", headers=auth).json()["jobs"]
    assert job["status"] == "succeeded" and job["preset"] == "face-to-sticker"
    assert job["input"]["reference"]["image"].startswith("http")  # the stored picture's URL
    assert "face found in the picture" in job["logs"]  # the astronaut's, cropped to it
