"""Browser fixture: Debian's chromium driven headless by Playwright, one browser per module.

The browser tests skip (saying why) where ``/usr/bin/chromium`` or the ``playwright`` package
is missing; ``.ci/run`` installs chromium, and ``playwright`` comes with the ``dev`` extra.
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need the playwright package (dev extra)"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
