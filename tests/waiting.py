"""Polling until something is true, for tests that watch real processes (fleet, scale)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    what: str, check: Callable[[], object], timeout: float = 120, interval: float = 0.05
) -> object:
    """``check()``'s first truthy value, polled every ``interval`` s; AssertionError after
    ``timeout`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
