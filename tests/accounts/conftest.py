"""In-process apps (no worker unless asked) with settings chosen per test."""

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
    """``make_client(**settings)``: an app on a fresh home (or ``home=`` to share one)."""
    with ExitStack() as stack:

        def make(
            *,
            home: Path | None = None,
            run_worker: bool = False,
            run_background: bool = True,
            presets: Path | None = None,
            **settings: Any,
        ) -> Client:
            loaded = Settings.load(home or tmp_path / "home", presets=presets, **settings)
            app = create_app(loaded, run_worker=run_worker, run_background=run_background)
            client = stack.enter_context(Client(app))
            client.svc = app.state.services
            return client

        yield make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()
