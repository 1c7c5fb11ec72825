"""Fixtures of the pack and reference tests: an in-process app (no worker) whose presets
name no weights, one of them the ``face-to-sticker`` preset."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts.helpers import Client
from PIL import Image

from sticker_maker.api import create_app
from sticker_maker.config import Settings

LIGHT_PRESETS = """
[presets.sticker-maker]
steps = 4
width = 64
height = 64
upscaler = ""
refiner = ""

[presets.face-to-sticker]
base = "no-such/model"
steps = 4
width = 64
height = 64
"""


def png(size: tuple[int, int] = (64, 64), colour: tuple[int, ...] = (200, 80, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def light_presets(tmp_path: Path) -> Path:
    path = tmp_path / "presets.toml"
    path.write_text(LIGHT_PRESETS)
    return path


@pytest.fixture
def client(tmp_path: Path, light_presets: Path) -> Iterator[Client]:
    settings = Settings.load(tmp_path / "home", presets=light_presets)
    app = create_app(settings, run_worker=False)
    with Client(app) as running:
        running.svc = app.state.services
        yield running
