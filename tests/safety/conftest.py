"""In-process apps with chosen safety settings (the worker only when a test asks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from accounts.helpers import Client

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """``make_client(safety=SafetySettings(...), **settings)``: an app on a fresh home."""
    with ExitStack() as stack:

        def make(
            *,
            run_worker: bool = False,
            run_background: bool = False,
            presets: Path | None = None,
            **settings: Any,
        ) -> Client:
            loaded = Settings.load(tmp_path / "home", presets=presets, **settings)
            app = create_app(loaded, run_worker=run_worker, run_background=run_background)
            client = stack.enter_context(Client(app))
            client.svc = app.state.services
            return client

        yield make
