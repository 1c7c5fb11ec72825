"""Sheet splitting: counts, grouping of multi-part stickers, reading order."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sticker_maker.finishing import FinishingError, split_sheet

from .helpers import alpha_of


def _truth_boxes(noto: Path, folder: str, sheet: str) -> list[list[int]]:
    manifest = json.loads((noto / folder / "manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["sheet"] == sheet)
    return [s["bbox"] for s in case["stickers"]]


def _centre(box: tuple[int, int, int, int] | list[int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


@pytest.mark.parametrize(
    ("folder", "sheet"),
    [("sheet", "sheet005"), ("sheet", "sheet003"), ("sheet-outlined", "sheet000")],
)
def test_noto_sheet_counts_and_order(noto: Path, folder: str, sheet: str) -> None:
    truth = _truth_boxes(noto, folder, sheet)
    stickers = split_sheet(Image.open(noto / folder / f"{sheet}.png"))
    assert len(stickers) == len(truth)
    # Same order as the ground-truth labels (row-major): each found sticker's box centre
    # lies inside the matching ground-truth box.
    for sticker, box in zip(stickers, truth, strict=True):
        cx, cy = _centre(sticker.info["sheet_box"])
        assert box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
        assert sticker.mode == "RGBA"
        a = alpha_of(sticker)
        assert a[0].max() == 0 and a[-1].max() == 0  # trimmed with transparent padding


def _synthetic_sheet() -> Image.Image:
    sheet = np.full((600, 900, 3), 255, np.uint8)
    cv2.circle(sheet, (150, 150), 90, (200, 40, 40), -1, cv2.LINE_AA)  # row 1, left
    cv2.rectangle(sheet, (620, 80), (800, 230), (40, 40, 200), -1)  # row 1, right
    # A two-part sticker: two figures 8 px apart, plus a dot next to them.
    cv2.rectangle(sheet, (330, 360), (420, 540), (30, 140, 60), -1)
    cv2.rectangle(sheet, (428, 360), (518, 540), (30, 140, 60), -1)
    cv2.circle(sheet, (540, 350), 6, (30, 140, 60), -1, cv2.LINE_AA)
    cv2.circle(sheet, (880, 580), 2, (0, 0, 0), -1)  # a speck
    cv2.ellipse(sheet, (120, 470), (80, 60), 0, 0, 360, (240, 180, 0), -1, cv2.LINE_AA)
    return Image.fromarray(sheet, "RGB")


def test_synthetic_sheet_groups_pieces_and_drops_specks() -> None:
    stickers = split_sheet(_synthetic_sheet(), border=4)
    boxes = [s.info["sheet_box"] for s in stickers]
    assert len(stickers) == 4
    centres = [_centre(b) for b in boxes]
    # Reading order: the two top stickers left to right, then the bottom row.
    assert centres[0][0] < centres[1][0] and max(centres[0][1], centres[1][1]) < 300
    assert centres[2][0] < centres[3][0] and min(centres[2][1], centres[3][1]) > 300
    two_part = boxes[3]
    assert two_part[0] <= 331 and two_part[2] >= 545  # both figures and the dot
    assert all(b[2] < 870 for b in boxes)  # the speck is not a sticker


def test_transparent_sheet_is_used_as_is() -> None:
    rgba = np.zeros((200, 400, 4), np.uint8)
    rgba[50:150, 20:120] = (255, 255, 255, 255)  # white-on-transparent: needs the alpha
    rgba[50:150, 250:380] = (9, 9, 9, 255)
    stickers = split_sheet(Image.fromarray(rgba, "RGBA"), border=0)
    assert [s.size for s in stickers] == [(100, 100), (130, 100)]


def test_white_rim_gets_no_second_border() -> None:
    rgba = np.zeros((300, 300, 4), np.uint8)
    cv2.circle(rgba, (150, 150), 100, (255, 255, 255, 255), -1)  # a white die-cut rim
    cv2.circle(rgba, (150, 150), 85, (200, 0, 0, 255), -1)
    (sticker,) = split_sheet(Image.fromarray(rgba, "RGBA"), padding=0)
    assert abs(sticker.width - 201) <= 2  # only the existing rim, nothing added
    (bordered,) = split_sheet(Image.fromarray(rgba, "RGBA"), padding=0, border=10)
    assert abs(bordered.width - 221) <= 2


def test_bad_min_area_is_rejected() -> None:
    with pytest.raises(FinishingError, match="min_area"):
        split_sheet(_synthetic_sheet(), min_area=0)


def test_white_border_with_faint_edge_counts_as_sticker() -> None:
    """White-on-white die-cut stickers: the faint edge encloses the border, so it is kept."""
    sheet = np.full((400, 800, 3), 255, np.uint8)
    for cx, colour in ((200, (200, 30, 30)), (600, (30, 30, 200))):
        cv2.circle(sheet, (cx, 200), 112, (228, 228, 228), 2, cv2.LINE_AA)  # faint cut edge
        cv2.circle(sheet, (cx, 200), 100, colour, -1, cv2.LINE_AA)  # the art
    stickers = split_sheet(Image.fromarray(sheet, "RGB"), padding=0)
    assert len(stickers) == 2
    for sticker in stickers:
        # The 12 px white border is part of the sticker, and no second border is added.
        assert abs(sticker.width - 227) <= 3
        row = np.asarray(sticker)[sticker.height // 2]
        assert row[6, 3] == 255 and row[6, :3].min() >= 250
