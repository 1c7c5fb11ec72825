"""A real uvicorn server with the app in a thread, for raw-socket and fault tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@contextmanager
def serving(settings: Settings, **app_options: Any) -> Iterator[tuple[str, Any]]:
    """``(base URL, app)`` of a server on a free port; stopped on exit."""
    app = create_app(settings, **app_options)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url, app
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def body_limit(app: Any) -> Any:
    """The app's BodyLimit middleware instance (built on first request)."""
    from sticker_maker.api.body_limit import BodyLimit

    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, BodyLimit):
        layer = getattr(layer, "app", None)
    return layer
