"""The real app in-process for the SDK suites: no worker of its own, it shares the database
and files of ``shared_server``, whose worker runs the jobs (API processes beside workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningServer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sticker_maker.api import create_app
from sticker_maker.config import Settings


@pytest.fixture(scope="module")
def app(shared_server: RunningServer, presets_file: Path) -> FastAPI:
    return create_app(Settings.load(shared_server.home, presets=presets_file), run_worker=False)


@pytest.fixture(scope="module")
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
