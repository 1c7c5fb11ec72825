"""``/docs`` and ``/redoc`` render in a real browser with every request off this server
refused (as on a machine without internet): their assets are the service's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from conftest import free_port

from sticker_maker.api import create_app
from sticker_maker.config import Settings

from .browser import ARTIFACTS, DESKTOP


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by uvicorn in a thread (no worker: the pages need none)."""
    home: Path = tmp_path_factory.mktemp("docs") / "home"
    app = create_app(Settings.load(home), run_worker=False, run_background=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _offline_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport=DESKTOP, base_url=url)
    context.set_default_timeout(30_000)
    refused: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page, refused


def test_swagger_ui_renders_offline(browser: Any, docs_url: str) -> None:
    page, refused = _offline_page(browser, docs_url)
    page.goto("/docs")
    title = page.wait_for_selector(".swagger-ui .info .title")
    assert "sticker-maker" in title.inner_text()
    page.locator(".opblock-summary-path", has_text="/v1/jobs/{job_id}").first.wait_for()
    assert page.locator("button.authorize").count() == 1  # the three key headers
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-swagger-offline.png"))
    assert refused == [] and page.errors == []


def test_redoc_renders_offline(browser: Any, docs_url: str) -> None:
    page, refused = _offline_page(browser, docs_url)
    page.goto("/redoc")
    heading = page.wait_for_selector("h1")
    assert "sticker-maker" in heading.inner_text()
    page.locator("h2", has_text="Submit a generation job").first.wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-redoc-offline.png"))
    assert refused == [] and page.errors == []
