"""Shared fixtures: tiny real-format models built once per session, isolated state.

Every test runs with ``STICKER_MAKER_HOME`` pointed at a temp folder and the Hub
offline, so nothing touches the user's state or the network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from devices import TEST_DEVICE, TEST_DTYPE  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: set to 1 to run the ``heavy`` tests too (``make test-slow``, CI's second test step)
RUN_SLOW = "STICKER_MAKER_RUN_SLOW"


def run_slow() -> bool:
    return os.environ.get(RUN_SLOW, "").strip() == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the ``heavy`` tests (chaos, outages, drains: real processes killed, stopped
    or starved for tens of seconds) unless ``STICKER_MAKER_RUN_SLOW=1``; deselected, not
    skipped, so the everyday run says plainly what it left for ``make test-slow``."""
    if run_slow():
        return
    heavy = [item for item in items if item.get_closest_marker("heavy") is not None]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if item.get_closest_marker("heavy") is None]


def pytest_report_header(config: pytest.Config) -> str:
    if run_slow():
        return f"{RUN_SLOW}=1: heavy tests included"
    return f"heavy tests (pytest -m heavy) left out: run them with {RUN_SLOW}=1 (make test-slow)"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STICKER_MAKER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STICKER_MAKER_PRESETS", raising=False)
    monkeypatch.delenv("STICKER_MAKER_DATABASE_URL", raising=False)
    if TEST_DEVICE != "cpu":  # a GPU run of the suite (see tests/devices.py)
        monkeypatch.setenv("STICKER_MAKER_DEVICE", TEST_DEVICE)
        monkeypatch.setenv("STICKER_MAKER_DTYPE", TEST_DTYPE)


@dataclass(frozen=True)
class TinyModels:
    #: random tiny SDXL (draws texture)
    sdxl: Path
    lora_diffusers: Path
    lora_kohya: Path
    #: same UNet and text encoders, VAE decoder trained to draw a sticker on white
    sticker_sdxl: Path
    #: a tiny IP-Adapter repository in h94/IP-Adapter's layout (plus, plus-face, encoder)
    ip_adapter: Path | None = None


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny SDXL folders and one LoRA in both key layouts, saved in the real formats."""
    from tiny_models import (
        build_tiny_ip_adapter,
        build_tiny_lora,
        build_tiny_sdxl,
        build_tiny_sticker_sdxl,
    )

    root = tmp_path_factory.mktemp("models")
    sdxl = build_tiny_sdxl(root / "tiny-sdxl")
    return TinyModels(
        sdxl=sdxl,
        lora_diffusers=build_tiny_lora(
            sdxl, root / "lora-diffusers.safetensors", layout="diffusers"
        ),
        lora_kohya=build_tiny_lora(sdxl, root / "lora-kohya.safetensors", layout="kohya"),
        sticker_sdxl=build_tiny_sticker_sdxl(root / "tiny-sticker-sdxl"),
        ip_adapter=build_tiny_ip_adapter(sdxl, root / "IP-Adapter"),
    )


@pytest.fixture(scope="session")
def tiny_taesd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random AutoencoderTiny folder (the live previews' decoder)."""
    from tiny_models import build_tiny_taesd

    return build_tiny_taesd(tmp_path_factory.mktemp("taesd") / "tiny-taesd")


def write_presets(path: Path, models: TinyModels, extra: str = "") -> Path:
    """A presets file that points the built-ins and a 'tiny' preset at the tiny sticker model
    (and the IP-Adapter of ``sticker-maker`` and ``face-to-sticker`` at the tiny one)."""
    ip = f'ip_adapter = "{models.ip_adapter}"\n' if models.ip_adapter else ""
    face = (
        f"""
[presets.face-to-sticker]
base = "{models.sticker_sdxl}"
lora = "{models.lora_kohya}"
steps = 4
width = 64
height = 64
{ip}"""
        if ip
        else ""
    )
    path.write_text(
        f"""
[presets.sticker-maker]
base = "{models.sticker_sdxl}"
lora = "{models.lora_kohya}"
steps = 4
width = 64
height = 64
{ip}{face}
[presets.Norod78-SDXL-StickerSheet-Lora]
base = "{models.sticker_sdxl}"
lora = "{models.lora_diffusers}"
steps = 4
width = 64
height = 64

[presets.tiny]
base = "{models.sticker_sdxl}"
lora = "{models.lora_diffusers}"
scheduler = "Euler"
steps = 4
width = 64
height = 64
aliases = ["t"]

[presets.missing-model]
base = "no-such-owner/no-such-sdxl-model"
steps = 2
width = 64
height = 64
{extra}
"""
    )
    return path


@pytest.fixture(scope="session")
def presets_file(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_presets(tmp_path_factory.mktemp("presets") / "presets.toml", tiny_models)


def _pythonpath() -> str:
    """This checkout first, then whatever the caller had (the GPU check adds its wheels)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``sticker-maker`` command (as ``python -m sticker_maker``)."""
    env = {**os.environ, "STICKER_MAKER_HOME": str(home), "PYTHONPATH": _pythonpath()}
    return subprocess.run(
        [sys.executable, "-m", "sticker_maker", *args],
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=300,
    )


@dataclass
class RunningServer:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def new_key(self, credits: float = 1000, admin: bool = False) -> str:
        scope = ("--admin",) if admin else ()
        made = cli("keys", "create", "--credits", str(credits), *scope, home=self.home)
        return made.stdout.strip()


def start_server(home: Path, presets: Path, *extra: str) -> RunningServer:
    port = free_port()
    log = home.parent / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sticker_maker",
            "serve",
            "--port",
            str(port),
            "--home",
            str(home),
            "--presets",
            str(presets),
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RunningServer(url, home, proc, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def server(shared_server: RunningServer) -> RunningServer:
    """A real ``sticker-maker serve`` process on a free port, with its worker: the session's
    shared one (started and warmed up once), seen as a plain server whose ``new_key`` runs
    the real ``keys create`` command. Each test makes its own keys, so tests do not meet."""
    return RunningServer(
        shared_server.url, shared_server.home, shared_server.process, shared_server.log
    )


class SharedServer(RunningServer):
    """A running server whose keys are made directly in its database (no CLI process each)."""

    def new_key(self, credits: float = 1000, admin: bool = False) -> str:
        from sticker_maker.accounts import KeyStore
        from sticker_maker.config import Settings
        from sticker_maker.db import Database

        db = Database(Settings.load(self.home).database_url)
        try:
            return KeyStore(db).create(credits=credits, scope="admin" if admin else "user").secret
        finally:
            db.dispose()


@pytest.fixture(scope="session")
def shared_server(
    presets_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One real server for the client suites (Segmind client, SDK, CLI client), started once.

    Tests share it by each making their own key; its model process warms up once. Synchronous
    requests may wait long here: the first one includes that warm-up on a busy machine.
    """
    home = tmp_path_factory.mktemp("shared-server") / "home"
    started = start_server(home, presets_file, "--sync-timeout", "300")
    running = SharedServer(started.url, started.home, started.process, started.log)
    yield running
    stop_server(running)
