"""Browser helpers: Debian's chromium driven headless by Playwright; pages, screenshots, art."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import REPO, RunningServer
from PIL import Image, ImageDraw

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "web"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def new_page(
    browser: Any, server: RunningServer, *, key: str | None = None, viewport=DESKTOP
) -> Any:
    """A fresh browser profile on the app; with ``key`` the key is already remembered."""
    context = browser.new_context(
        viewport=viewport,
        accept_downloads=True,
        base_url=server.url,
        device_scale_factor=1,
    )
    context.set_default_timeout(30_000)
    if key:
        context.add_init_script(f"localStorage.setItem('sticker-maker.api-key', {key!r});")
    page = context.new_page()
    page.errors = []  # uncaught errors in the page fail the test that reads them
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto("/")
    page.wait_for_selector("body.ready")
    page.wait_for_function("() => document.querySelector('#preset').options.length > 0")
    return page


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def record_status(page: Any) -> None:
    """Keep every text the status line shows (steps can pass faster than a test can look)."""
    page.evaluate(
        """() => {
          window.__statuses = [];
          const el = document.getElementById('status-text');
          new MutationObserver(() => window.__statuses.push(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        }"""
    )


def wait_for_stickers(page: Any, count: int, timeout: float = 120_000) -> Any:
    """The newest batch once all its images have loaded."""
    page.wait_for_function(
        """(n) => {
          const imgs = [...document.querySelectorAll('.batch:first-child .card img')];
          return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0);
        }""",
        arg=count,
        timeout=timeout,
    )
    return page.locator(".batch").first


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def drawing(discs: int = 1, size: tuple[int, int] = (160, 160)) -> bytes:
    """Flat-coloured discs with dark outlines on white: a picture, or a sheet of stickers."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    colours = [(230, 80, 60), (40, 150, 90), (50, 100, 220), (240, 180, 20)]
    slot = size[0] // discs
    for i in range(discs):
        cx, cy, r = slot * i + slot // 2, size[1] // 2, min(slot, size[1]) // 3
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r), fill=colours[i % 4], outline=(20, 20, 20), width=3
        )
    return png_bytes(img)


def wait_job(server: RunningServer, key: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(
            f"{server.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")
