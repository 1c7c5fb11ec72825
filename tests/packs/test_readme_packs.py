"""Every example of the README's "Stickers of you" and "Packs" sections, as written (only
the address, the key and ``$ID`` are this server's), against the routes on a socket; a test
thread finishes each job as the worker would (the real worker runs packs in
``test_packs_e2e.py``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from PIL import Image
from replicate_api.conftest import App

from sticker_maker.api import create_app
from sticker_maker.config import Settings


def _blocks(title: str) -> list[tuple[str, str]]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def readme_app(tmp_path: Path, light_presets: Path, ip_adapter_presets: None) -> App:
    settings = Settings.load(tmp_path / "home", presets=light_presets)
    served = App(create_app(settings, run_worker=False))
    yield served  # type: ignore[misc]
    served.close()


def test_the_readme_examples_run_as_written(readme_app: App, tmp_path: Path) -> None:
    app = readme_app
    work = tmp_path / "work"
    work.mkdir()
    Image.new("RGB", (64, 64), (180, 120, 90)).save(work / "me.jpg")
    created = app.http.post("/v1/packs", json={"character": "a corgi", "count": 4}).json()
    env = {
        **os.environ,
        "KEY": app.token,
        "ID": created["id"],
        "STICKER_MAKER_URL": app.root,
        "STICKER_MAKER_API_KEY": app.token,
        "REPLICATE_BASE_URL": app.root,
        "REPLICATE_API_TOKEN": app.token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    host = app.root.removeprefix("http://")
    blocks = _blocks("Stickers of you") + _blocks("Packs")
    assert [kind for kind, _ in blocks] == [
        "python", "bash", "python", "bash", "bash", "python", "bash",
    ]  # fmt: skip
    stop = app.auto_worker()
    outputs = []
    try:
        for kind, code in blocks:
            if kind == "python":
                command = [sys.executable, "-c", code]
            else:
                command = ["bash", "-ec", code.replace("localhost:8000", host)]
            done = subprocess.run(
                command, cwd=work, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, (code, done.stdout, done.stderr)
            outputs.append(done.stdout)
    finally:
        stop.set()

    assert outputs[0].count(f"{app.root}/files/") == 1  # the SDK's stickers of me.jpg
    assert list((work / "stickers").glob("*-sticker.png"))
    assert outputs[2].strip().startswith(f"{app.root}/files/")  # replicate: the cut-out
    decoder = json.JSONDecoder()
    pack, end = decoder.raw_decode(outputs[3])
    assert pack["kind"] == "pack" and len(pack["input"]["expressions"]) == 4
    assert len(decoder.raw_decode(outputs[3][end:].strip())[0]["expressions"]) >= 16
    with zipfile.ZipFile(work / "corgi-whatsapp.zip") as zf:
        assert json.loads(zf.read("contents.json"))["sticker_packs"][0]["name"] == "Corgi"
    with zipfile.ZipFile(work / "corgi-telegram.zip") as zf:
        assert "emojis.txt" in zf.namelist()
    assert outputs[5].startswith("[(")
    assert list((work / "corgi").glob("*-whatsapp.zip"))
    assert list((work / "corgi").glob("*-telegram.zip"))
    jobs = app.svc.jobs.list_for_key(app.token.split("_")[1])
    references = [j for j in jobs if getattr(j.input, "reference", None) is not None]
    assert len(references) == 3  # SDK, CLI and Replicate: each stored the picture
