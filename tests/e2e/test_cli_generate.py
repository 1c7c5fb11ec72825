"""`sticker-maker generate` runs the engine locally and writes both PNGs; errors are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import cli
from PIL import Image

pytestmark = pytest.mark.slow


def test_generate_writes_image_and_sticker(presets_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(
        "generate",
        "cute cat",
        "--preset",
        "tiny",
        "-o",
        str(out),
        "--seed",
        "11",
        "--steps",
        "3",
        "--presets",
        str(presets_file),
        home=tmp_path / "home",
    )
    assert result.returncode == 0, result.stderr
    assert "3/3" in result.stderr  # the progress bar reached the last step
    image = Image.open(out / "cute-cat-11.png")
    sticker = Image.open(out / "cute-cat-11-sticker.png")
    assert image.mode == "RGB" and sticker.mode == "RGBA" and image.size == sticker.size
    alpha = np.asarray(sticker)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255


def test_generate_reports_missing_model_without_traceback(
    presets_file: Path, tmp_path: Path
) -> None:
    result = cli(
        "generate",
        "x",
        "--preset",
        "missing-model",
        "-o",
        str(tmp_path),
        "--presets",
        str(presets_file),
        home=tmp_path / "home",
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no-such-owner/no-such-sdxl-model" in result.stderr
    assert "base =" in result.stderr  # says how to point the preset at a local folder


def test_generate_names_the_bad_option(presets_file: Path, tmp_path: Path) -> None:
    result = cli(
        "generate",
        "x",
        "--width",
        "100",
        "--presets",
        str(presets_file),
        home=tmp_path / "home",
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "width" in result.stderr and "multiple of 8" in result.stderr
