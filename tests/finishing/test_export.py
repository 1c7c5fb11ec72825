"""Exports: sizes, formats and byte limits, packs, print files."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from sticker_maker.finishing import (
    TARGETS,
    FinishingError,
    die_cut,
    export,
    print_export,
    whatsapp_pack,
)
from sticker_maker.finishing._export import _webp, _webp_under

from .helpers import disc_rgba

KB = 1024


@pytest.fixture(scope="module")
def sticker() -> Image.Image:
    return die_cut(disc_rgba(size=700, radius=250), border=10)


@pytest.fixture(scope="module")
def noisy() -> Image.Image:
    """Incompressible artwork: random colours, opaque, 1024 px."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return Image.fromarray(rgba, "RGBA")


def _open(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    ("target", "fmt", "size", "limit", "margin"),
    [
        ("whatsapp", "WEBP", (512, 512), 100 * KB, 16),
        ("whatsapp_tray", "PNG", (96, 96), 50 * KB, 0),
        ("discord", "PNG", (320, 320), 512 * KB, 0),
    ],
)
@pytest.mark.parametrize("source", ["sticker", "noisy"])
def test_square_targets(
    request: pytest.FixtureRequest,
    source: str,
    target: str,
    fmt: str,
    size: tuple[int, int],
    limit: int,
    margin: int,
) -> None:
    data = export(request.getfixturevalue(source), target)
    img = _open(data)
    assert (img.format, img.size) == (fmt, size)
    assert len(data) <= limit
    alpha = np.asarray(img.convert("RGBA"))[..., 3]
    if source == "sticker":  # the cut-out keeps its transparent surroundings
        assert alpha.min() == 0
        return
    # opaque square art fills the canvas inside the target's margin, clear outside it
    assert alpha[margin : size[1] - margin, margin : size[0] - margin].min() == 255
    if margin:
        assert alpha[:margin].max() == alpha[-margin:].max() == 0
        assert alpha[:, :margin].max() == alpha[:, -margin:].max() == 0


@pytest.mark.parametrize("source", ["sticker", "noisy"])
def test_telegram(request: pytest.FixtureRequest, source: str) -> None:
    art = request.getfixturevalue(source)
    data = export(art, "telegram")
    img = _open(data)
    assert img.format in ("PNG", "WEBP")
    assert max(img.size) == 512 and min(img.size) <= 512
    assert len(data) <= 512 * KB
    if source == "noisy":
        assert img.format == "WEBP"  # a lossless PNG of noise cannot fit


def test_noisy_whatsapp_steps_quality_down(noisy: Image.Image) -> None:
    canvas = noisy.resize((480, 480))
    assert len(_webp(canvas, 90)) > 100 * KB  # the first quality tried does not fit
    assert len(export(noisy, "whatsapp")) <= 100 * KB


def test_impossible_limit_is_a_clear_error(noisy: Image.Image) -> None:
    with pytest.raises(FinishingError, match="whatsapp: cannot encode a WebP under 200 bytes"):
        _webp_under(noisy.resize((256, 256)), 200, "whatsapp")


def test_png_and_webp_keep_pixels(sticker: Image.Image) -> None:
    for target in ("png", "webp"):
        img = _open(export(sticker, target))
        assert img.size == sticker.size
        assert np.array_equal(np.asarray(img.convert("RGBA")), np.asarray(sticker))


def test_print_png_has_300_dpi_and_svg_cut_line(sticker: Image.Image) -> None:
    png, svg = print_export(sticker)
    img = _open(png)
    assert img.info["dpi"] == pytest.approx((300, 300), abs=0.1)
    assert _open(export(sticker, "print_png")).info["dpi"] == pytest.approx((300, 300), abs=0.1)
    w, h = sticker.size
    assert f'width="{w / 300:.4f}in"' in svg and f'viewBox="0 0 {w} {h}"' in svg
    path = re.search(r'<path id="cut-line" d="(M [^"]+ Z)"', svg)
    assert path is not None
    points = np.array(re.findall(r"(-?[\d.]+) (-?[\d.]+)", path.group(1)), float)
    assert len(points) >= 12
    # The cut line follows the outline: every vertex is on the alpha edge of the disc.
    centre = np.array([w / 2, h / 2])
    radius = np.linalg.norm(points - centre, axis=1)
    assert np.abs(radius - (250 + 10)).max() <= 2.5


def test_bad_target_lists_the_allowed_ones(sticker: Image.Image) -> None:
    with pytest.raises(FinishingError, match=r"target='snapchat'.*'telegram'.*'whatsapp_tray'"):
        export(sticker, "snapchat")
    assert set(TARGETS) >= {"png", "webp", "telegram", "whatsapp", "discord", "print_png"}
    assert export(sticker, "print_svg") == print_export(sticker)[1].encode("utf-8")


def test_whatsapp_pack_contents(sticker: Image.Image) -> None:
    small = sticker.resize((200, 200))
    data = whatsapp_pack([small, small, small], name="Test pack", publisher="me")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        assert names == ["01.webp", "02.webp", "03.webp", "contents.json", "tray.png"]
        contents = json.loads(zf.read("contents.json"))
        pack = contents["sticker_packs"][0]
        assert (pack["name"], pack["publisher"], pack["identifier"]) == (
            "Test pack",
            "me",
            "Test_pack",
        )
        assert pack["tray_image_file"] == "tray.png"
        assert [s["image_file"] for s in pack["stickers"]] == ["01.webp", "02.webp", "03.webp"]
        assert all(1 <= len(s["emojis"]) <= 3 for s in pack["stickers"])
        for name in ("01.webp", "02.webp", "03.webp"):
            raw = zf.read(name)
            assert _open(raw).size == (512, 512) and len(raw) <= 100 * KB
        tray = zf.read("tray.png")
        assert _open(tray).size == (96, 96) and len(tray) <= 50 * KB


@pytest.mark.parametrize("count", [2, 31])
def test_whatsapp_pack_needs_3_to_30(count: int) -> None:
    tiny = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    with pytest.raises(FinishingError, match=rf"3 to 30 stickers, got {count}"):
        whatsapp_pack([tiny] * count, name="x", publisher="y")


def test_whatsapp_pack_checks_names() -> None:
    tiny = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    with pytest.raises(FinishingError, match="publisher"):
        whatsapp_pack([tiny] * 3, name="x", publisher="")


def test_print_cut_line_has_inner_paths_for_holes() -> None:
    ring = np.asarray(disc_rgba(size=300, radius=100)).copy()
    yy, xx = np.mgrid[0:300, 0:300]
    ring[(yy - 150) ** 2 + (xx - 150) ** 2 < 40**2] = 0
    with_hole = die_cut(Image.fromarray(ring, "RGBA"), border=5, holes="cut")
    _, svg = print_export(with_hole)
    path = re.search(r'<path id="cut-line" d="([^"]+)"', svg)
    assert path is not None
    subpaths = [p for p in path.group(1).split("M ") if p.strip()]
    assert len(subpaths) == 2  # the outer contour, then the hole's rim
    w, h = with_hole.size
    centre = np.array([w / 2, h / 2])
    radii = [
        np.linalg.norm(np.array(re.findall(r"(-?[\d.]+) (-?[\d.]+)", p), float) - centre, axis=1)
        for p in subpaths
    ]
    assert np.abs(radii[0] - (100 + 5)).max() <= 2.5  # the border's outer edge
    assert np.abs(radii[1] - (40 - 5)).max() <= 2.5  # the border inside the hole
    # the classic die cut (holes filled) has only the outer contour
    filled = die_cut(Image.fromarray(ring, "RGBA"), border=5, holes="keep")
    assert print_export(filled)[1].count("M ") == 1
