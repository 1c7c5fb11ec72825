"""Fixtures of the Replicate-compatible API tests: the app on a socket (no worker)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import replicate
import uvicorn
from conftest import free_port
from fastapi import FastAPI
from PIL import Image

from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.jobs import Job, OutputFile
from sticker_maker.storage import new_file_name


class App:
    """The app on a local port, a key, an httpx client and a replicate client with that key."""

    def __init__(self, application: FastAPI) -> None:
        port = free_port()
        self.root = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.svc = application.state.services
        self.token = self.svc.keys.create(credits=1000, label="ada").secret
        self.http = httpx.Client(
            base_url=self.root, headers={"authorization": f"Bearer {self.token}"}, timeout=30
        )
        self.replicate = self.client(self.token)

    def client(self, token: str) -> replicate.Client:
        return replicate.Client(api_token=token, base_url=self.root)

    def auto_worker(self) -> threading.Event:
        """Finish every queued job as it comes (its samples, its format) until set."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                job = self.svc.jobs.claim_next("auto-worker")
                if job is None:
                    time.sleep(0.05)
                    continue
                fmt = getattr(job.input, "output_format", "png")
                self._complete(job, getattr(job.input, "samples", 1), fmt)

        threading.Thread(target=run, daemon=True).start()
        return stop

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(20)

    def play_worker(self, outputs: int = 1, fmt: str = "png", fail: str | None = None) -> Job:
        """Claim the oldest queued job and finish it: ``outputs`` image+sticker pairs."""
        job = self.svc.jobs.claim_next("test-worker")
        assert job is not None
        self.svc.jobs.append_log(job, "generated 1 image(s)")
        if fail:
            self.svc.jobs.fail(job, fail, 0.5)
            return job
        self._complete(job, outputs, fmt)
        return job

    def _complete(self, job: Job, outputs: int, fmt: str) -> None:
        files = []
        for index in range(outputs):
            for kind in ("image", "sticker"):
                name = new_file_name(fmt)
                self.svc.storage.put(name, _image(fmt))
                files.append(OutputFile(name, kind, index, 1, 8, 8, f"image/{fmt}"))
        self.svc.jobs.complete(job, files, 1.25)


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(buf, format=fmt.upper())
    return buf.getvalue()


@pytest.fixture
def app(tmp_path: Path, presets_file_light: Path) -> Iterator[App]:
    settings = Settings.load(
        tmp_path / "home",
        presets=presets_file_light,
        webhook_allow_networks=("127.0.0.1/32",),
        webhook_backoff=0.2,
    )
    served = App(create_app(settings, run_worker=False))
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def presets_file_light(tmp_path: Path) -> Path:
    """Presets that name no weights on disk (no worker runs here)."""
    path = tmp_path / "presets.toml"
    path.write_text(
        """
[presets.sticker-maker]
steps = 4
width = 64
height = 64
upscaler = ""
refiner = ""

[presets.tiny]
base = "no-such/model"
steps = 4
width = 64
height = 64
aliases = ["t", "ada/tiny-stickers"]
"""
    )
    return path
