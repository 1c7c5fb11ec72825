"""The web app in a real browser against a real server with the tiny models.

Each flow is its own test. Screenshots go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import RunningServer
from PIL import Image

from .browser import (
    PHONE,
    drawing,
    new_page,
    record_status,
    shot,
    wait_for_stickers,
    wait_job,
)

pytestmark = pytest.mark.slow


def saved(download: Any, tmp_path: Path) -> Path:
    path = tmp_path / download.suggested_filename
    download.save_as(str(path))
    return path


def assert_sticker_png(path: Path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG" and image.mode == "RGBA", (image.format, image.mode)
    alpha = np.asarray(image)[..., 3]
    assert alpha.min() == 0, "no transparent pixels: the background was not cut away"
    assert alpha.max() == 255, "no opaque pixels: the subject is missing"
    return image


def test_generate_flow_to_a_downloaded_png_with_alpha(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    key = server.new_key()
    # another key's jobs in front, so this one has to wait in line first
    other = server.new_key()
    for _ in range(2):
        httpx.post(
            f"{server.url}/v1/jobs",
            headers={"Authorization": f"Bearer {other}"},
            json={"prompt": "blocker", "preset": "tiny", "steps": 2},
        ).raise_for_status()

    page = new_page(browser, server)
    # first visit: the key form is the first thing asked for, the defaults are sensible
    assert page.is_visible("#key-form") and not page.is_visible("#account")
    assert page.input_value("#preset") == "sticker-maker"
    assert page.is_checked("#samples-1") and page.is_checked("#border")
    assert not page.is_checked("#upscale")
    assert page.input_value("#seed") == ""
    assert page.input_value("#size") == "default"
    shot(page, "01-first-visit")

    page.fill("#api-key", key)
    page.click("#save-key")
    page.wait_for_selector("#account:not([hidden])")
    assert page.text_content("#key-prefix") == key[: key.index("_", 3)] + "_…"
    assert key[-8:] not in page.content(), "the page shows the secret part of the key"
    assert page.evaluate("localStorage.getItem('sticker-maker.api-key')") == key

    page.fill("#prompt", "a happy corgi in a space helmet")
    record_status(page)
    page.click("#generate")
    page.wait_for_selector("#job-status:not([hidden])")
    assert page.locator("#forming .forming-tile").count() == 1
    shot(page, "02-generating", full_page=False)
    batch = wait_for_stickers(page, 1)
    statuses = page.evaluate("window.__statuses")
    assert any(re.search(r"Waiting in line: \d+ jobs? ahead|Next in line", s) for s in statuses), (
        statuses
    )
    assert any(re.fullmatch(r"Step [1-4] of 4|Cutting out your stickers…", s) for s in statuses), (
        statuses
    )
    assert page.is_hidden("#job-status")
    assert "a happy corgi in a space helmet" in batch.locator("h3").inner_text()
    seed_text = batch.locator(".seed").inner_text()
    seed = int(re.fullmatch(r"Seed (\d+)", seed_text).group(1))
    # the sticker sits on the transparency checkerboard
    backdrop = batch.locator(".card-image").evaluate("e => getComputedStyle(e).backgroundImage")
    assert "conic-gradient" in backdrop
    shot(page, "03-stickers")

    with page.expect_download() as info:
        batch.locator("[data-action='png']").click()
    download = info.value
    assert download.suggested_filename == f"a-happy-corgi-in-a-space-helmet-{seed}.png"
    assert_sticker_png(saved(download, tmp_path))
    # what the page asked for: the defaults, and a die cut with a white border
    (job,) = httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()[
        "jobs"
    ]
    assert job["input"]["samples"] == 1 and job["input"]["preset"] == "sticker-maker"
    assert job["input"]["seed"] == seed
    assert job["input"]["finishing"]["border"] is None  # in proportion to the size
    assert job["input"]["finishing"]["trim"] is True

    # the job is in the key's recent jobs; credits show a number where the service has accounts
    page.wait_for_selector("#recent .recent-item")
    assert "a happy corgi" in page.locator("#recent .recent-item").first.inner_text()
    page.wait_for_function("() => document.querySelector('#credits').textContent !== '—'")
    assert re.fullmatch(r"[\d,.\s]+", page.text_content("#credits"))

    # forgetting the key asks for one again
    page.click("#forget-key")
    assert page.is_visible("#key-form") and page.is_hidden("#account")
    assert page.evaluate("localStorage.getItem('sticker-maker.api-key')") is None
    assert page.errors == []
    page.context.close()


def test_cancel_while_waiting_in_line(browser: Any, server: RunningServer) -> None:
    # a long job in front (canceled at the end), so this one is surely still waiting
    other = {"Authorization": f"Bearer {server.new_key()}"}
    blocker = httpx.post(
        f"{server.url}/v1/jobs",
        headers=other,
        json={"prompt": "blocker", "preset": "tiny", "steps": 100},
    ).json()
    key = server.new_key()
    page = new_page(browser, server, key=key)
    page.fill("#prompt", "cute cat")
    page.click("#generate")
    page.wait_for_selector("#status-text:has-text('in line')")
    page.click("#cancel-job")
    page.wait_for_selector("#toast:has-text('Canceled')")
    assert page.is_hidden("#job-status") and page.locator(".batch").count() == 0
    assert page.get_attribute("#generate", "aria-disabled") == "false"
    (job,) = httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()[
        "jobs"
    ]
    assert job["status"] == "canceled"
    assert page.errors == []
    page.context.close()
    httpx.post(blocker["urls"]["cancel"], headers=other).raise_for_status()
    wait_job(server, other["Authorization"][7:], blocker["id"])


def test_copy_puts_a_png_on_the_clipboard(browser: Any, server: RunningServer) -> None:
    key = server.new_key()
    job = httpx.post(
        f"{server.url}/v1/jobs",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "cute cat", "preset": "tiny", "seed": 5},
    ).json()
    wait_job(server, key, job["id"])
    page = new_page(browser, server, key=key)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.locator("#recent .recent-item").first.click()
    batch = wait_for_stickers(page, 1)
    batch.locator("[data-action='copy']").click()
    page.wait_for_selector("#toast:has-text('Copied')")
    types = page.evaluate(
        "async () => (await navigator.clipboard.read()).flatMap((item) => item.types)"
    )
    assert "image/png" in types
    assert page.errors == []
    page.context.close()


def test_wrong_key_is_explained(browser: Any, server: RunningServer) -> None:
    page = new_page(browser, server)
    page.fill("#api-key", "sm_nosuchid_notarealsecret")
    page.click("#save-key")
    page.wait_for_selector("#api-key-error:not([hidden])")
    assert "wasn't accepted" in page.text_content("#api-key-error")
    assert page.get_attribute("#api-key", "aria-invalid") == "true"
    assert page.evaluate("localStorage.getItem('sticker-maker.api-key')") is None
    page.context.close()

    # a remembered key that stopped working: the error says so where the user acted
    page = new_page(browser, server, key="sm_nosuchid_notarealsecret")
    page.fill("#prompt", "cute cat")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content("#form-error-title") == "That API key wasn't accepted."
    assert page.is_visible("#key-form")
    shot(page, "04-error-wrong-key")
    page.context.close()


def test_size_out_of_range_names_the_field(browser: Any, server: RunningServer) -> None:
    page = new_page(browser, server, key=server.new_key())
    page.fill("#prompt", "cute cat")
    page.select_option("#size", "custom")
    page.fill("#width", "4096")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content("#form-error-title") == "Please check the highlighted field."
    assert "Width: 4096 is out of range (must be ≤ 2048)" in page.text_content("#form-error-detail")
    assert page.get_attribute("#width", "aria-invalid") == "true"
    assert "must be ≤ 2048" in page.text_content("#width-error")
    assert page.evaluate("document.activeElement.id") == "width"
    assert page.get_attribute("#height", "aria-invalid") is None
    shot(page, "05-error-invalid-size")
    page.context.close()


def test_out_of_credits_is_explained(browser: Any, server: RunningServer) -> None:
    page = new_page(browser, server, key=server.new_key(credits=0))
    page.fill("#prompt", "cute cat")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content("#form-error-title") == "This key is out of credits."
    assert "needs up to" in page.text_content("#form-error-detail")
    shot(page, "06-error-out-of-credits")
    page.context.close()


def test_rate_limit_and_no_accounts(browser: Any, server: RunningServer) -> None:
    """The 429 body and header as api/errors.py writes them (the limits are tested there)."""
    page = new_page(browser, server, key=server.new_key())
    page.route(
        "**/v1/jobs",
        lambda route: (
            route.fulfill(
                status=429,
                headers={"Retry-After": "7", "Content-Type": "application/json"},
                body=json.dumps(
                    {
                        "error": {
                            "code": "rate_limited",
                            "message": "rate limit: at most 10 job submissions per minute",
                            "retry_after": 6.2,
                        }
                    }
                ),
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    # a service without accounts (no GET /v1/account) shows no number
    page.route(
        "**/v1/account",
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body='{"error": {"code": "not_found", "message": "Not Found"}}',
        ),
    )
    page.clock.install()  # the countdown runs on a fake clock: no race with a loaded machine
    page.reload()
    page.wait_for_selector("body.ready")
    page.wait_for_selector("#account:not([hidden])")
    assert page.text_content("#credits") == "—"
    page.clock.pause_at(time.time() + 3600)

    page.fill("#prompt", "cute cat")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.text_content("#form-error-title") == "Too many requests — try again in 7 seconds."
    assert "10 job submissions per minute" in page.text_content("#form-error-detail")
    assert page.text_content("#generate") == "Try again in 7 s"
    assert page.get_attribute("#generate", "aria-disabled") == "true"
    page.clock.run_for(2000)
    assert page.text_content("#generate") == "Try again in 5 s"
    page.clock.run_for(5000)
    assert page.text_content("#generate") == "Generate"
    assert page.get_attribute("#generate", "aria-disabled") == "false"
    page.context.close()


def test_upload_is_cut_out_into_a_sticker(
    browser: Any, server: RunningServer, tmp_path: Path
) -> None:
    page = new_page(browser, server, key=server.new_key())
    page.click("#tab-upload")
    assert page.is_visible("#upload-form") and page.is_hidden("#generate-form")
    # something that is not a picture: the error lands under the picker
    page.set_input_files(
        "#upload-file", {"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}
    )
    page.click("#cut-out")
    page.wait_for_selector("#upload-file-error:not([hidden])")
    assert page.get_attribute("#upload-file", "aria-invalid") == "true"
    assert page.text_content("#form-error-title") == "Please check the highlighted field."
    page.set_input_files(
        "#upload-file", {"name": "disc.png", "mimeType": "image/png", "buffer": drawing()}
    )
    page.wait_for_selector("#upload-preview:not([hidden])")
    page.click("#cut-out")
    batch = wait_for_stickers(page, 1)
    assert batch.locator("h3").inner_text() == "Cut-out of your picture"
    shot(page, "07-upload-cut-out")
    with page.expect_download() as info:
        batch.locator("[data-action='png']").click()
    assert_sticker_png(saved(info.value, tmp_path))
    assert page.errors == []
    page.context.close()


def test_sheet_upload_is_split_into_single_stickers(browser: Any, server: RunningServer) -> None:
    page = new_page(browser, server, key=server.new_key())
    page.click("#tab-upload")
    sheet = drawing(discs=3, size=(480, 160))
    page.set_input_files(
        "#upload-file", {"name": "sheet.png", "mimeType": "image/png", "buffer": sheet}
    )
    page.click("#split-upload")
    batch = wait_for_stickers(page, 3)
    assert batch.locator(".card").count() == 3
    shot(page, "08-sheet-split")
    page.context.close()


def test_exports_for_each_app(browser: Any, server: RunningServer, tmp_path: Path) -> None:
    key = server.new_key()
    for seed in (1, 2, 3):
        job = httpx.post(
            f"{server.url}/v1/jobs",
            headers={"Authorization": f"Bearer {key}"},
            json={"prompt": "cute cat", "preset": "tiny", "seed": seed},
        ).json()
        wait_job(server, key, job["id"])
    page = new_page(browser, server, key=key)
    page.wait_for_selector("#recent .recent-item >> nth=2")
    for item in page.locator("#recent .recent-item").all():
        item.click()
    wait_for_stickers(page, 1)
    card = page.locator(".batch .card").first

    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))

    def export(target: str, count: int = 1) -> list[Path]:
        downloads.clear()
        card.locator("summary").click()
        card.locator(f"[data-export='{target}']").click()
        deadline = time.monotonic() + 30
        while len(downloads) < count and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert len(downloads) == count, f"{target}: {len(downloads)} downloads"
        return [saved(d, tmp_path) for d in downloads]

    (telegram,) = export("telegram")
    assert max(Image.open(telegram).size) == 512
    (whatsapp,) = export("whatsapp")
    assert Image.open(whatsapp).format == "WEBP" and Image.open(whatsapp).size == (512, 512)
    (discord,) = export("discord")
    assert Image.open(discord).size == (320, 320)
    files = export("print", count=2)
    assert {p.suffix for p in files} == {".png", ".svg"}

    # three stickers into a WhatsApp pack
    for batch_card in page.locator(".batch .card").all():
        batch_card.locator("summary").click()
        batch_card.locator("[data-action='pack']").click()
    page.wait_for_selector("#pack-bar:not([hidden])")
    shot(page, "09-whatsapp-pack")
    with page.expect_download() as info:
        page.click("#pack-download")
    with zipfile.ZipFile(saved(info.value, tmp_path)) as pack:
        names = pack.namelist()
    assert len([n for n in names if n.endswith(".webp")]) == 3
    assert any(n.endswith(".png") for n in names), f"no tray icon in {names}"
    assert page.errors == []
    page.context.close()


def test_phone_width_layout(browser: Any, server: RunningServer) -> None:
    key = server.new_key()
    job = httpx.post(
        f"{server.url}/v1/jobs",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "a tiny robot waving", "preset": "tiny", "samples": 2},
    ).json()
    wait_job(server, key, job["id"])
    page = new_page(browser, server, key=key, viewport=PHONE)
    page.locator("#recent .recent-item").first.click()
    wait_for_stickers(page, 2)
    layout = page.evaluate(
        """() => {
          const box = (s) => document.querySelector(s).getBoundingClientRect();
          return {
            scrollWidth: document.documentElement.scrollWidth,
            compose: box('.compose'), results: box('.results'), generate: box('#generate'),
            cards: [...document.querySelectorAll('.batch .card')]
              .map((c) => c.getBoundingClientRect()),
          };
        }"""
    )
    assert layout["scrollWidth"] <= PHONE["width"], "the page scrolls sideways on a phone"
    assert layout["results"]["top"] >= layout["compose"]["bottom"], "columns did not stack"
    assert layout["generate"]["width"] >= 300, "the primary action is not full width"
    for card in layout["cards"]:
        assert card["left"] >= 0 and card["right"] <= PHONE["width"]
    small = page.evaluate(
        """() => [...document.querySelectorAll(
               'button, select, input:not([type=file]):not([type=radio]), summary')]
             .filter((e) => e.offsetParent !== null)
             .filter((e) => (e.closest('.check') || e).getBoundingClientRect().height < 32)
             .map((e) => e.id || e.textContent.trim())"""
    )
    assert small == [], f"tap targets under 32 px: {small}"
    shot(page, "10-phone")
    # the export menu is a sheet along the bottom of the screen, inside it
    page.locator(".batch .card summary").first.click()
    menu = page.locator(".batch .card .menu").first.bounding_box()
    assert menu["x"] == 0 and menu["width"] == PHONE["width"]
    shot(page, "11-phone-export-menu", full_page=False)
    page.context.close()


def test_keyboard_and_labels(browser: Any, server: RunningServer) -> None:
    key = server.new_key()
    page = new_page(browser, server, key=key)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
             .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label'))
             .map((e) => e.id || e.name)"""
    )
    assert unlabelled == []
    assert page.get_attribute("#live", "aria-live") == "polite"
    assert page.get_attribute("#form-error", "role") == "alert"

    # the first Tab reaches the skip link, and focus is visible
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # the skip link moved focus past the header
    focused = page.evaluate(
        "(() => { const e = document.activeElement;"
        " return [e.id, getComputedStyle(e).outlineStyle]; })()"
    )
    assert focused == ["tab-generate", "solid"], focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "prompt"

    # tabs switch with the arrow keys
    page.focus("#tab-generate")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-upload"
    assert page.is_visible("#upload-form")
    page.keyboard.press("ArrowLeft")
    assert page.is_visible("#generate-form")

    # Ctrl+Enter in the prompt generates, all from the keyboard (here without a border)
    page.focus("#border")
    page.keyboard.press("Space")
    assert not page.is_checked("#border")
    page.focus("#prompt")
    page.keyboard.type("a cat made of clouds")
    page.keyboard.press("Control+Enter")
    batch = wait_for_stickers(page, 1)
    assert page.evaluate("document.activeElement.classList.contains('batch')")
    assert "clouds" in batch.locator("h3").inner_text()
    assert "ready" in page.text_content("#live")
    (job,) = httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()[
        "jobs"
    ]
    assert job["input"]["finishing"]["border"] == 0
    page.context.close()


def test_a_refused_prompt_is_explained_in_words(browser: Any, server: RunningServer) -> None:
    page = new_page(browser, server, key=server.new_key())
    page.fill("#prompt", "a n u d e woman")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])")
    title = page.text_content("#form-error-title")
    assert title == "This request was refused by the service's content policy."
    detail = page.text_content("#form-error-detail")
    assert "Nothing was queued or charged" in detail and "nude" not in detail
    shot(page, "14-refused-by-content-policy")
    page.context.close()


def _tall_or_wide(size: tuple[int, int]) -> bytes:
    """A filled ellipse filling most of a tall or wide canvas, on white."""
    from PIL import ImageDraw

    from .browser import png_bytes

    img = Image.new("RGB", size, "white")
    w, h = size
    ImageDraw.Draw(img).ellipse(
        (w // 10, h // 10, w - w // 10, h - h // 10),
        fill=(50, 100, 220),
        outline=(20, 20, 20),
        width=3,
    )
    return png_bytes(img)


@pytest.mark.parametrize(("name", "size"), [("tall", (250, 337)), ("wide", (420, 180))])
def test_tall_and_wide_stickers_fit_their_card(
    browser: Any, server: RunningServer, name: str, size: tuple[int, int]
) -> None:
    page = new_page(browser, server, key=server.new_key())
    page.click("#tab-upload")
    page.set_input_files(
        "#upload-file",
        {"name": f"{name}.png", "mimeType": "image/png", "buffer": _tall_or_wide(size)},
    )
    page.wait_for_selector("#upload-preview:not([hidden])")
    page.click("#cut-out")
    batch = wait_for_stickers(page, 1)
    boxes = batch.locator(".card-image").first.evaluate(
        """(box) => {
          const img = box.querySelector('img');
          const b = box.getBoundingClientRect(), i = img.getBoundingClientRect();
          return { box: [b.left, b.top, b.right, b.bottom], img: [i.left, i.top, i.right, i.bottom],
                   natural: [img.naturalWidth, img.naturalHeight] };
        }"""
    )
    (bl, bt, br, bb), (il, it, ir, ib) = boxes["box"], boxes["img"]
    # the picture's box lies inside its card (object-fit: contain shows it whole inside)
    assert bl <= il and bt <= it and ir <= br and ib <= bb, boxes
    natural_w, natural_h = boxes["natural"]
    assert (natural_h > natural_w) == (name == "tall"), boxes  # really tall / wide
    shot(page, f"12-{name}-sticker")
    assert page.errors == []
    page.context.close()


def test_the_page_speaks_to_its_user_not_the_operator(browser: Any, server: RunningServer) -> None:
    """A style without a model fails in words for the user (the Hub and presets-file advice
    stays in the operator's logs); Upscale is offered only where the style can; the
    recent-jobs hint says how long results are really kept."""
    key = server.new_key()
    page = new_page(browser, server, key=key)
    # the built-in style has an upscaler and a refiner; "tiny" has neither: the server says
    # so in /v1/presets and the page follows
    assert page.is_enabled("#upscale") and page.is_hidden("#upscale-unavailable")
    page.check("#upscale")
    page.select_option("#preset", "tiny")
    assert page.is_disabled("#upscale") and not page.is_checked("#upscale")
    assert page.is_visible("#upscale-unavailable")
    presets = httpx.get(f"{server.url}/v1/presets").json()["presets"]
    assert {p["name"]: p["upscale"] for p in presets}["tiny"] is False
    page.wait_for_function(
        "() => /last hour/.test(document.querySelector('#recent-empty').textContent)"
    )
    page.select_option("#preset", "missing-model")
    page.fill("#prompt", "a cat")
    page.click("#generate")
    page.wait_for_selector("#form-error:not([hidden])", timeout=120_000)
    title = page.text_content("#form-error-title")
    detail = page.text_content("#form-error-detail")
    assert title == "This style isn't available on this service right now."
    for operator_words in ("presets.", "Hugging Face", "base =", "no-such-owner"):
        assert operator_words not in title + detail
    (job,) = httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}).json()[
        "jobs"
    ]
    assert job["error_code"] == "model_unavailable" and "no-such-owner" in job["error"]
    shot(page, "13-model-unavailable")
    assert page.errors == []
    page.context.close()


def test_an_empty_sticker_shows_its_picture_and_says_why(
    browser: Any, server: RunningServer
) -> None:
    key = server.new_key()
    made = httpx.post(
        f"{server.url}/v1/jobs",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "a cat", "preset": "tiny", "seed": 3},
    ).json()
    job = wait_job(server, key, made["id"])
    assert job["status"] == "succeeded"
    # as the service marks a sticker whose cut-out found nothing (test_empty_sticker.py)
    job["output"][1]["empty"] = True
    page = new_page(browser, server, key=key)
    page.evaluate(
        """async (job) => {
          const src = document.querySelector('script[type=module]').src;
          const { renderBatch } = await import(src.replace(/app\\.js$/, 'cards.js'));
          const pack = { has: () => false, onChange: () => {}, toggle: () => {} };
          const actions = { reuseSeed: () => {}, split: () => {}, pack };
          document.getElementById('batches').prepend(renderBatch(job, actions));
          document.getElementById('empty').hidden = true;
        }""",
        job,
    )
    card = page.locator(".batch").first.locator(".card").first
    assert "nothing was found to cut out" in card.locator(".card-note").inner_text()
    assert "1 sticker · 1 empty" in page.locator(".batch").first.locator(".hint").first.inner_text()
    assert card.locator("img").get_attribute("src") == job["output"][0]["url"]  # the picture
    assert card.locator("details.export-menu").is_hidden()  # nothing to export
    shot(page, "14-empty-sticker")
    assert page.errors == []
    page.context.close()
