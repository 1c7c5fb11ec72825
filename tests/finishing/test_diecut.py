"""Die-cut border, drop shadow and trimming."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sticker_maker.finishing import FinishingError, die_cut, trim

from .helpers import alpha_of, disc_rgba


def _margins(a: np.ndarray) -> tuple[int, int, int, int]:
    """Fully transparent rows/columns on the left, top, right and bottom."""
    rows = np.flatnonzero(a.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0))
    return (
        int(cols[0]),
        int(rows[0]),
        a.shape[1] - 1 - int(cols[-1]),
        a.shape[0] - 1 - int(rows[-1]),
    )


def _opaque_width(a: np.ndarray) -> int:
    cols = np.flatnonzero((a >= 128).any(axis=0))
    return int(cols[-1] - cols[0] + 1)


def test_border_width_and_even_padding() -> None:
    sticker = die_cut(disc_rgba(radius=100), border=12, padding=7)
    a = alpha_of(sticker)
    assert _margins(a) == (7, 7, 7, 7)
    assert abs(_opaque_width(a) - 2 * (100 + 12)) <= 2
    arr = np.asarray(sticker)
    # The ring between the disc and the cut line is opaque white.
    ring = arr[sticker.height // 2, 7 + 3 : 7 + 9]
    assert (ring[:, 3] == 255).all() and (ring[:, :3] >= 250).all()
    # The subject itself is untouched in the middle.
    assert tuple(arr[sticker.height // 2, sticker.width // 2, :3]) == (30, 90, 200)


def test_default_border_is_proportional() -> None:
    small = die_cut(disc_rgba(size=200, radius=40), padding=0)
    large = die_cut(disc_rgba(size=800, radius=200), padding=0)
    grow_small = _opaque_width(alpha_of(small)) - 80
    grow_large = _opaque_width(alpha_of(large)) - 400
    assert grow_small > 0
    assert abs(grow_large / 2 - 0.025 * 400) <= 1.5  # ~2.5 % of the longer side
    assert grow_large > 3 * grow_small


def test_border_zero_is_the_trimmed_bare_cut_out() -> None:
    disc = disc_rgba(radius=60)
    assert np.array_equal(np.asarray(die_cut(disc, border=0)), np.asarray(trim(disc)))


def test_shadow_adds_soft_dark_pixels_below() -> None:
    disc = disc_rgba(radius=80)
    plain = die_cut(disc, border=6, padding=4)
    shaded = die_cut(disc, border=6, padding=4, shadow=True)
    a = alpha_of(shaded)
    assert shaded.height > plain.height
    assert _margins(a) == (4, 4, 4, 4)
    arr = np.asarray(shaded).astype(int)
    below = arr[-10, shaded.width // 2]
    assert 0 < below[3] < 200 and below[:3].max() < 60  # translucent and dark


def test_keep_canvas_keeps_size_and_position() -> None:
    disc = disc_rgba(size=300, radius=60)
    out = die_cut(disc, border=8, keep_canvas=True)
    assert out.size == disc.size
    a_in, a_out = alpha_of(disc), alpha_of(out)
    assert (a_out[a_in == 255] == 255).all()
    assert a_out[150, 150 - 60 - 5] == 255 and a_out[150, 150 - 60 - 12] == 0


def _disc_with_holes() -> Image.Image:
    """A 100 px disc with a wide hole (r 40) and a narrow one (r 4) beside it."""
    rgba = np.asarray(disc_rgba(size=300, radius=100)).copy()
    yy, xx = np.mgrid[0:300, 0:300]
    rgba[(yy - 150) ** 2 + (xx - 150) ** 2 < 40**2] = 0
    rgba[(yy - 150) ** 2 + (xx - 215) ** 2 < 4**2] = 0
    return Image.fromarray(rgba, "RGBA")


def test_keep_fills_holes_with_the_border() -> None:
    out = np.asarray(die_cut(_disc_with_holes(), border=5, keep_canvas=True, holes="keep"))
    for y, x in ((150, 150), (150, 215)):
        assert out[y, x, 3] == 255 and out[y, x, :3].min() == 255  # white, not a hole


@pytest.mark.parametrize("holes", ["auto", "cut"])
def test_border_rings_wide_holes_and_closes_narrow_ones(holes: str) -> None:
    out = np.asarray(die_cut(_disc_with_holes(), border=5, keep_canvas=True, holes=holes))
    assert out[150, 150, 3] == 0  # the wide hole stays open...
    assert out[150, 150 - 40 + 3, 3] == 255  # ...with the white border inside its rim
    assert out[150, 150 - 40 + 3, :3].min() == 255
    assert out[150, 150 - 40 + 8, 3] == 0
    # the narrow hole (8 px across, under two border widths) is closed, white
    assert out[150, 215, 3] == 255 and out[150, 215, :3].min() == 255


def test_bad_holes_value_names_it() -> None:
    with pytest.raises(FinishingError, match="holes"):
        die_cut(disc_rgba(), holes="fill")


def test_trim_with_padding() -> None:
    rgba = np.zeros((50, 60, 4), np.uint8)
    rgba[10:20, 30:35] = (1, 2, 3, 255)
    out = trim(Image.fromarray(rgba, "RGBA"), padding=3)
    assert out.size == (5 + 6, 10 + 6)
    assert _margins(alpha_of(out)) == (3, 3, 3, 3)


@pytest.mark.parametrize("call", [lambda im: trim(im), lambda im: die_cut(im)])
def test_fully_transparent_input_is_an_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FinishingError, match="fully transparent"):
        call(Image.new("RGBA", (20, 20), (0, 0, 0, 0)))


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"border": -1}, "border"), ({"padding": 2.5}, "padding")]
)
def test_bad_sizes_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(FinishingError, match=name):
        die_cut(disc_rgba(), **kwargs)  # type: ignore[arg-type]
