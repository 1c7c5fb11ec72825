"""Reference pictures end to end, through every interface, on a real server whose
``face-to-sticker`` preset has a tiny IP-Adapter.

ENABLE AFTER THE ENGINE MERGE (issue-15-engine): these tests skip until
``tests/tiny_models.py`` has the engine's tiny IP-Adapter builder. The lead adjusts
``_ip_adapter_preset`` to the preset keys the engine reads, if they differ.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import replicate
from conftest import (
    RunningServer,
    SharedServer,
    TinyModels,
    cli,
    start_server,
    stop_server,
    write_presets,
)

import sticker_maker as sm
from tests.packs.conftest import png

pytestmark = pytest.mark.slow

tiny = pytest.importorskip("tiny_models")
BUILDER = getattr(tiny, "build_tiny_ip_adapter", None)
if BUILDER is None:  # pragma: no cover - until the engine's tiny IP-Adapter lands
    pytest.skip(
        "needs the engine's tiny IP-Adapter (tests/tiny_models.build_tiny_ip_adapter, "
        "issue-15-engine): enable after the merge",
        allow_module_level=True,
    )


def _ip_adapter_preset(models: TinyModels, adapter: Any) -> str:
    """The face-to-sticker preset on the tiny model with the tiny IP-Adapter."""
    return f"""
[presets.face-to-sticker]
base = "{models.sticker_sdxl}"
ip_adapter = "{adapter}"
steps = 4
width = 64
height = 64
"""


@pytest.fixture(scope="module")
def ref_server(
    tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("ref-server")
    adapter = BUILDER(tiny_models.sticker_sdxl, root / "ip-adapter")  # type: ignore[misc]
    presets = write_presets(
        root / "presets.toml", tiny_models, _ip_adapter_preset(tiny_models, adapter)
    )
    started = start_server(root / "home", presets, "--sync-timeout", "300")
    running = SharedServer(started.url, started.home, started.process, started.log)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def key(ref_server: RunningServer) -> str:
    return ref_server.new_key()


def test_sdk_generate_from_a_picture(ref_server: RunningServer, key: str, tmp_path: Path) -> None:
    photo = tmp_path / "me.png"
    photo.write_bytes(png((96, 96)))
    with sm.Client(ref_server.url, key) as client:
        job = client.generate(
            "a person", preset="face-to-sticker", image=photo, ip_adapter_weight=0.7, timeout=240
        )
        assert job.succeeded and job.input["reference"]["ip_adapter_weight"] == 0.7
        assert job.stickers[0].to_pil().mode == "RGBA"
        assert "face" in job.logs.lower() or "whole picture" in job.logs.lower()


def test_a_pack_of_a_picture_runs_and_exports(ref_server: RunningServer, key: str) -> None:
    with sm.Client(ref_server.url, key) as client:
        pack = client.packs.make(
            "a cartoon person", count=3, preset="face-to-sticker", image=png(), timeout=240
        )
        assert [s.emoji for s in pack.stickers] == ["😄", "😢", "😠"]
        data = client.packs.export(pack, "whatsapp")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert len(json.loads(zf.read("contents.json"))["sticker_packs"][0]["stickers"]) == 3


def test_replicate_face_to_sticker_runs(ref_server: RunningServer, key: str) -> None:
    client = replicate.Client(api_token=key, base_url=ref_server.url)
    output = client.run(
        "fofr/face-to-sticker", input={"image": io.BytesIO(png()), "width": 64, "height": 64}
    )
    assert isinstance(output, list) and len(output) == 2


def test_cli_generate_with_an_image_on_the_server(
    ref_server: RunningServer, key: str, tmp_path: Path
) -> None:
    photo = tmp_path / "me.png"
    photo.write_bytes(png())
    result = cli(
        "generate", "a person", "--image", str(photo), "--preset", "face-to-sticker",
        "--seed", "1", "--server", ref_server.url, "--api-key", key, "-o", str(tmp_path / "o"),
        home=tmp_path / "client-home",
    )  # fmt: skip
    assert "a-person-1-sticker.png" in result.stdout
