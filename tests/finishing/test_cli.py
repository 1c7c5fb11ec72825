"""``cutout`` and ``split`` commands through a Typer app they are registered on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from sticker_maker.cli import finishing_cmds
from sticker_maker.finishing import METHODS, TARGETS

from .helpers import REPO, alpha_of, iou


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    finishing_cmds.register(app)
    return app


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    arr = np.full((240, 320, 3), (60, 170, 90), np.uint8)
    cv2.circle(arr, (150, 120), 70, (250, 250, 250), -1, cv2.LINE_AA)
    cv2.circle(arr, (150, 120), 30, (200, 30, 30), -1, cv2.LINE_AA)
    path = tmp_path_factory.mktemp("in") / "ball.png"
    Image.fromarray(arr, "RGB").save(path)
    return path


def _invoke(app: typer.Typer, *args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_cutout_writes_bordered_rgba(app: typer.Typer, photo: Path, tmp_path: Path) -> None:
    code, out = _invoke(app, "cutout", photo, "-o", tmp_path / "out", "--shadow", "-v")
    assert code == 0, out
    img = Image.open(tmp_path / "out" / "ball.png")
    assert img.mode == "RGBA"
    assert img.width < 320 and abs(img.width - img.height) <= 12  # trimmed to the ball
    assert "model-free" in out and "background" in out


def test_cutout_bare_no_trim_keeps_the_ball_only(
    app: typer.Typer, photo: Path, tmp_path: Path
) -> None:
    code, out = _invoke(app, "cutout", photo, "-o", tmp_path, "--border", 0, "--no-trim")
    assert code == 0, out
    written = Image.open(tmp_path / "ball.png")
    assert written.size == (320, 240)  # not trimmed
    # the ball the fixture drew (centre (150, 120), radius 70) and nothing of the green
    yy, xx = np.mgrid[:240, :320]
    ball = (xx - 150) ** 2 + (yy - 120) ** 2 <= 70**2
    assert iou(alpha_of(written) >= 128, ball) >= 0.98
    assert alpha_of(written)[~ball].mean() < 3  # no border: the backdrop is clear


def test_cutout_exports_beside_the_png(app: typer.Typer, photo: Path, tmp_path: Path) -> None:
    targets = ("--export", "whatsapp", "-e", "print_png", "-e", "print_svg")
    code, out = _invoke(app, "cutout", photo, "-o", tmp_path, *targets)
    assert code == 0, out
    names = sorted(p.name for p in tmp_path.iterdir())
    # one name per export, the API's (.../export/print_png, .../export/print_svg)
    assert names == ["ball.png", "ball.print_png.png", "ball.print_svg.svg", "ball.whatsapp.webp"]
    assert (tmp_path / "ball.print_svg.svg").read_text().startswith("<?xml")
    assert Image.open(tmp_path / "ball.whatsapp.webp").size == (512, 512)


def test_split_writes_numbered_stickers(app: typer.Typer, tmp_path: Path) -> None:
    sheet = np.full((300, 600, 3), 255, np.uint8)
    cv2.circle(sheet, (120, 150), 80, (0, 0, 200), -1)
    cv2.rectangle(sheet, (350, 60), (540, 240), (200, 0, 0), -1)
    Image.fromarray(sheet, "RGB").save(tmp_path / "sheet.png")
    code, out = _invoke(app, "split", tmp_path / "sheet.png", "-o", tmp_path / "parts")
    assert code == 0, out
    parts = sorted((tmp_path / "parts").iterdir())
    assert [p.name for p in parts] == ["sheet_01.png", "sheet_02.png"]
    first = np.asarray(Image.open(parts[0]))
    assert first[first.shape[0] // 2, first.shape[1] // 2, 2] > 150  # the blue disc first
    assert "2 stickers" in out


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--remover", "magic"], "--remover"),
        (["--border", "-2"], "--border"),
        (["--export", "snapchat"], "--export"),
        (["--remover", "model"], "--model"),
        (["--model", "missing.onnx", "--remover", "model"], "--model"),
    ],
)
def test_bad_values_name_the_option(
    app: typer.Typer, photo: Path, tmp_path: Path, args: list[str], option: str
) -> None:
    code, out = _invoke(app, "cutout", photo, "-o", tmp_path, *args)
    assert code == 2
    assert option in out
    assert "Traceback" not in out


def test_missing_image_is_reported(app: typer.Typer, tmp_path: Path) -> None:
    code, out = _invoke(app, "cutout", tmp_path / "nope.png", "-o", tmp_path)
    assert code == 2 and "nope.png" in out and "Traceback" not in out


def test_help_documents_the_options(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["cutout", "--help"], terminal_width=120)
    assert result.exit_code == 0
    for word in ("--remover", "--model", "--border", "--shadow", "--no-trim", "--export"):
        assert word in result.output


def test_the_cli_and_the_api_name_the_exports_alike() -> None:
    from sticker_maker.api.finishing import EXPORTS

    assert [t.value for t in finishing_cmds.Target] == list(EXPORTS)
    assert "print" not in EXPORTS


def test_choices_mirror_the_library() -> None:
    assert [m.value for m in finishing_cmds.Remover] == list(METHODS)
    assert [t.value for t in finishing_cmds.Target] == list(TARGETS)


def test_importing_the_commands_is_light() -> None:
    code = (
        "import sys\n"
        "import sticker_maker.cli.finishing_cmds\n"
        "heavy = [m for m in ('numpy', 'cv2', 'torch', 'sticker_maker.finishing') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(("holes", "centre"), [("auto", 0), ("keep", 255), ("cut", 0)])
def test_cutout_holes(app: typer.Typer, tmp_path: Path, holes: str, centre: int) -> None:
    arr = np.full((240, 240, 3), 255, np.uint8)
    cv2.circle(arr, (120, 120), 90, (40, 120, 60), -1, cv2.LINE_AA)
    cv2.circle(arr, (120, 120), 40, (255, 255, 255), -1, cv2.LINE_AA)
    Image.fromarray(arr, "RGB").save(tmp_path / "ring.png")
    out_dir = tmp_path / holes
    code, out = _invoke(app, "cutout", tmp_path / "ring.png", "-o", out_dir, "--holes", holes)
    assert code == 0, out
    written = alpha_of(Image.open(out_dir / "ring.png"))
    h, w = written.shape
    assert written[h // 2, w // 2] == centre  # border ringing the open hole, not inside it
    code, out = _invoke(app, "cutout", tmp_path / "ring.png", "-o", out_dir, "--holes", "fill")
    assert code != 0 and "fill" in out
