"""Rebuild ``docs/images/cutout-demo.png`` from real ``sticker-maker cutout --shadow`` output.

    python docs/make_cutout_demo.py [--data DIR]

For each Noto case (``case003_noise``, ``case007_color``) the picture shows the input,
then the finished sticker on a transparency checkerboard: 320 px tiles, side by side,
10 px apart. DIR defaults to ``$STICKER_MAKER_NOTO_DATA`` or ``../shared/data/stickers-noto``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CASES = ("case003_noise", "case007_color")
TILE, GAP, CHECK = 320, 10, 16


def checkerboard(side: int) -> Image.Image:
    board = Image.new("RGB", (side, side), (235, 235, 235))
    dark = Image.new("RGB", (CHECK, CHECK), (205, 205, 205))
    for y in range(0, side, CHECK):
        for x in range((y // CHECK) % 2 * CHECK, side, 2 * CHECK):
            board.paste(dark, (x, y))
    return board


def fitted(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("STICKER_MAKER_NOTO_DATA") or REPO / ".." / "shared/data/stickers-noto"
    parser.add_argument("--data", type=Path, default=Path(default))
    args = parser.parse_args()
    inputs = [args.data / "composite" / f"{case}.png" for case in CASES]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "sticker_maker", "cutout", "--shadow", "-o", out, *inputs],
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        tiles: list[Image.Image] = []
        for path in inputs:
            tiles.append(fitted(Image.open(path).convert("RGB"), TILE))
            sticker = fitted(Image.open(Path(out) / path.name).convert("RGBA"), TILE)
            board = checkerboard(TILE)
            board.paste(
                sticker, ((TILE - sticker.width) // 2, (TILE - sticker.height) // 2), sticker
            )
            tiles.append(board)
    canvas = Image.new("RGB", (len(tiles) * TILE + (len(tiles) - 1) * GAP, TILE), "white")
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (i * (TILE + GAP) + (TILE - tile.width) // 2, (TILE - tile.height) // 2))
    target = REPO / "docs" / "images" / "cutout-demo.png"
    canvas.save(target, optimize=True)
    print(target)


if __name__ == "__main__":
    main()
