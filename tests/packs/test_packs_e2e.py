"""Packs end to end: the real server and worker with the tiny models, through the SDK
(sync and async) and the CLI (``--server`` and local). Packs here have no reference
picture; reference runs need the engine's tiny IP-Adapter (``test_reference_e2e.py``)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from conftest import RunningServer, cli
from PIL import Image
from typer.testing import CliRunner

import sticker_maker as sm
from sticker_maker.cli.main import app
from tests.packs.conftest import png

pytestmark = pytest.mark.slow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def key(shared_server: RunningServer) -> str:
    return shared_server.new_key()


def test_a_pack_runs_as_one_job_and_exports(
    shared_server: RunningServer, key: str, tmp_path: Path
) -> None:
    with sm.Client(shared_server.url, key) as client:
        pack = client.packs.make(
            "a round robot",
            expressions=["happy", "sad", "eating pizza"],
            preset="tiny",
            seed=3,
            timeout=240,
        )
        assert pack.succeeded and pack.raw["kind"] == "pack"
        assert [s.index for s in pack.stickers] == [0, 1, 2]
        assert [(s.expression, s.emoji) for s in pack.stickers] == [
            ("happy", "😄"),
            ("sad", "😢"),
            ("eating pizza", "🙂"),
        ]
        assert {s.seed for s in pack.stickers} == {3}
        names = [p.name for p in pack.save(tmp_path) if "sticker" in p.name]
        assert names == [
            "a-round-robot-3-happy-sticker.png",
            "a-round-robot-3-sad-sticker.png",
            "a-round-robot-3-eating-pizza-sticker.png",
        ]
        assert pack.metrics.predict_time and pack.metrics.predict_time > 0

        whatsapp = client.packs.export(pack, "whatsapp", tmp_path / "wa.zip", name="Robots")
        with zipfile.ZipFile(io.BytesIO(whatsapp)) as zf:
            contents = json.loads(zf.read("contents.json"))["sticker_packs"][0]
            assert [s["emojis"] for s in contents["stickers"]] == [["😄"], ["😢"], ["🙂"]]
            assert Image.open(io.BytesIO(zf.read("tray.png"))).size == (96, 96)
        assert (tmp_path / "wa.zip").read_bytes() == whatsapp
        telegram = client.packs.export(pack.id, "telegram")
        with zipfile.ZipFile(io.BytesIO(telegram)) as zf:
            listed = json.loads(zf.read("pack.json"))
            assert [s["expression"] for s in listed["stickers"]] == ["happy", "sad", "eating pizza"]
            first = Image.open(io.BytesIO(zf.read(listed["stickers"][0]["file"])))
            assert max(first.size) == 512

        with pytest.raises(sm.InvalidRequestError) as raised:
            client.packs.create("a robot", expressions=["happy", " "], preset="tiny")
        assert raised.value.status_code == 400 and "expressions[1]" in str(raised.value)
        assert len(client.packs.expressions()) >= 16


@pytest.mark.anyio
async def test_async_packs(shared_server: RunningServer, key: str) -> None:
    async with sm.AsyncClient(shared_server.url, key) as client:
        pack = await client.packs.make("a cactus", count=2, preset="tiny", seed=8, timeout=240)
        assert [s.expression for s in pack.stickers] == ["happy", "sad"]
        data = await client.packs.export(pack, "telegram")
        assert zipfile.ZipFile(io.BytesIO(data)).read("emojis.txt").decode().count("\n") == 2
        with pytest.raises(sm.InvalidRequestError):
            await client.generate("me", preset="tiny", image=png())  # no IP-Adapter: 400


def test_cli_pack_on_the_server_with_export(
    shared_server: RunningServer, key: str, tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    result = cli(
        "pack", "a corgi", "--count", "3", "--preset", "tiny", "--seed", "4",
        "--export", "whatsapp", "--server", shared_server.url, "--api-key", key, "-o", str(out),
        home=tmp_path / "client-home",
    )  # fmt: skip
    names = [Path(line).name for line in result.stdout.split()]
    assert "a-corgi-4-happy-sticker.png" in names and "a-corgi-4-angry-sticker.png" in names
    assert names[-1] == "a-corgi-whatsapp.zip"
    with zipfile.ZipFile(out / "a-corgi-whatsapp.zip") as zf:
        emojis = [
            s["emojis"]
            for s in json.loads(zf.read("contents.json"))["sticker_packs"][0]["stickers"]
        ]
    assert emojis == [["😄"], ["😢"], ["😠"]]


def test_cli_refuses_bad_packs_and_pictures_naming_the_field(
    shared_server: RunningServer, key: str, tmp_path: Path, light_presets: Path
) -> None:
    runner = CliRunner(env={"STICKER_MAKER_URL": shared_server.url, "STICKER_MAKER_API_KEY": key})
    result = runner.invoke(app, ["pack", "a corgi", "--count", "31", "--preset", "tiny"])
    assert result.exit_code == 1 and "count" in result.output
    photo = tmp_path / "me.png"
    photo.write_bytes(png())
    result = runner.invoke(app, ["generate", "me", "--image", str(photo), "--preset", "tiny"])
    assert result.exit_code == 1 and "image" in result.output
    assert "cannot make stickers of a picture" in result.output
    not_an_image = tmp_path / "me.jpg"
    not_an_image.write_text("hello")
    args = ["generate", "me", "--image", str(not_an_image), "--preset", "face-to-sticker"]
    result = runner.invoke(app, [*args, "--presets", str(light_presets), "--local"])
    assert result.exit_code == 1 and "image: is not an image" in result.output


def test_cli_pack_locally_exports_for_telegram(
    tmp_path: Path, light_presets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local path's plumbing (the model run is the worker's, tested through the
    server above): the job it runs, the files it writes, the export."""
    from sticker_maker.cli import pack_cmds
    from sticker_maker.worker.predictor import Sticker

    ran = []

    def run_local(job, kind, picture, presets_file):  # type: ignore[no-untyped-def]
        ran.append((job, kind, picture))
        return [Sticker(png(), png(), job.seed, 64, 64, 64, 64) for _ in job.expressions]

    monkeypatch.setattr(pack_cmds, "run_local", run_local)
    photo = tmp_path / "me.png"
    photo.write_bytes(png())
    out = tmp_path / "local"
    args = ["pack", "a frog", "--expressions", "happy,cool", "--preset", "face-to-sticker"]
    args += ["--seed", "2", "--image", str(photo), "--ip-adapter-weight", "0.4"]
    args += ["--export", "telegram", "--presets", str(light_presets), "-o", str(out), "--local"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = [Path(line).name for line in result.stdout.split()]
    assert names == [
        "a-frog-2-happy-sticker.png",
        "a-frog-2-cool-sticker.png",
        "a-frog-telegram.zip",
    ]
    job, kind, picture = ran[0]
    assert kind == "pack" and job.samples == 2 and job.seeds() == [2, 2]
    assert job.reference.ip_adapter_weight == 0.4 and picture.startswith(b"\x89PNG")
    with zipfile.ZipFile(out / "a-frog-telegram.zip") as zf:
        assert zf.read("emojis.txt").decode().split("\n")[1].split()[1] == "😎"
