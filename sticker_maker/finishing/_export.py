"""Export finished stickers for messengers and print.

Sizes and byte limits are met by construction: each encoder steps quality (WebP) or
colours (PNG palette) down until the file fits, and never returns a file over the limit;
it raises :class:`FinishingError` only when even the smallest setting does not fit.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ._errors import FinishingError, bad_choice
from ._imageio import ensure_image, to_rgba

KB = 1024
PRINT_DPI = 300
WHATSAPP_MARGIN = 16  # WhatsApp asks for a margin around the artwork on its 512 canvas
WHATSAPP_MIN_STICKERS = 3
WHATSAPP_MAX_STICKERS = 30
WEBP_QUALITIES = (90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 0)
PALETTE_SIZES = (256, 128, 64, 32, 16, 8, 4, 2)


@dataclass(frozen=True)
class ExportTarget:
    """What one export target asks for."""

    name: str
    extension: str
    max_bytes: int | None
    description: str


TARGETS: dict[str, ExportTarget] = {
    t.name: t
    for t in (
        ExportTarget("png", "png", None, "PNG, original size"),
        ExportTarget("webp", "webp", None, "lossless WebP, original size"),
        ExportTarget(
            "telegram", "png", 512 * KB, "Telegram: one side 512 px, other <= 512, <= 512 KB"
        ),
        ExportTarget("whatsapp", "webp", 100 * KB, "WhatsApp: 512x512 WebP, <= 100 KB"),
        ExportTarget("whatsapp_tray", "png", 50 * KB, "WhatsApp tray icon: 96x96 PNG, <= 50 KB"),
        ExportTarget("discord", "png", 512 * KB, "Discord: 320x320 PNG, <= 512 KB"),
        ExportTarget("print_png", "png", None, "print: 300 dpi PNG"),
        ExportTarget("print_svg", "svg", None, "print: the SVG cut line matching print_png"),
    )
}


def _size_text(limit: int) -> str:
    return f"{limit // KB} KB" if limit % KB == 0 else f"{limit} bytes"


def _check_target(target: str) -> ExportTarget:
    if target not in TARGETS:
        raise bad_choice("target", target, TARGETS)
    return TARGETS[target]


def _scaled(img: Image.Image, box_w: int, box_h: int) -> Image.Image:
    """``img`` scaled (up or down) to fit ``box_w`` x ``box_h`` exactly on its limiting side."""
    w, h = img.size
    scale = min(box_w / w, box_h / h)
    size = (max(1, min(box_w, round(w * scale))), max(1, min(box_h, round(h * scale))))
    if size == img.size:
        return img
    # Pillow resamples RGBA with premultiplied alpha, so no colour bleeds from
    # transparent pixels.
    return img.resize(size, Image.Resampling.LANCZOS)


def _on_canvas(img: Image.Image, side: int, margin: int) -> Image.Image:
    """``img`` fitted inside ``side - 2*margin`` and centred on a transparent square."""
    inner = _scaled(img, side - 2 * margin, side - 2 * margin)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    canvas.paste(inner, ((side - inner.width) // 2, (side - inner.height) // 2))
    return canvas


def _clean(img: Image.Image) -> Image.Image:
    """Zero the colour of fully transparent pixels (smaller files, no hidden colours)."""
    arr = np.array(img, dtype=np.uint8)
    arr[arr[..., 3] == 0] = 0
    return Image.fromarray(arr, "RGBA")


def _png(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True, **params)
    return buf.getvalue()


def _png_under(img: Image.Image, limit: int, what: str) -> bytes:
    """PNG no larger than ``limit`` bytes: full colour, then ever smaller palettes."""
    data = _png(img)
    if len(data) <= limit:
        return data
    for colours in PALETTE_SIZES:
        quant = img.quantize(colors=colours, method=Image.Quantize.FASTOCTREE, dither=0)
        data = _png(quant)
        if len(data) <= limit:
            return data
    raise FinishingError(
        f"{what}: cannot encode a PNG under {_size_text(limit)} even with a 2-colour palette"
    )


def _webp(img: Image.Image, quality: int, alpha_quality: int = 100) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=quality, alpha_quality=alpha_quality, method=4)
    return buf.getvalue()


def _webp_under(img: Image.Image, limit: int, what: str) -> bytes:
    """Lossy WebP no larger than ``limit`` bytes, stepping quality, then alpha quality."""
    for alpha_quality in (100, 50, 0):
        for quality in WEBP_QUALITIES:
            data = _webp(img, quality, alpha_quality)
            if len(data) <= limit:
                return data
    raise FinishingError(f"{what}: cannot encode a WebP under {_size_text(limit)} at any quality")


def _telegram(img: Image.Image) -> bytes:
    fitted = _clean(_scaled(img, 512, 512))
    limit = TARGETS["telegram"].max_bytes or 0
    data = _png(fitted)
    if len(data) <= limit:
        return data
    # Telegram accepts WebP too: a lossy WebP keeps more detail than a small palette.
    try:
        return _webp_under(fitted, limit, "telegram")
    except FinishingError:
        return _png_under(fitted, limit, "telegram")


def _exporters() -> dict[str, Callable[[Image.Image], bytes]]:
    return {
        "png": lambda img: _png(img),
        "webp": lambda img: _lossless_webp(img),
        "telegram": _telegram,
        "whatsapp": lambda img: _webp_under(
            _clean(_on_canvas(img, 512, WHATSAPP_MARGIN)), 100 * KB, "whatsapp"
        ),
        "whatsapp_tray": lambda img: _png_under(
            _clean(_on_canvas(img, 96, 0)), 50 * KB, "whatsapp_tray"
        ),
        "discord": lambda img: _png_under(_clean(_on_canvas(img, 320, 0)), 512 * KB, "discord"),
        "print_png": lambda img: _png(img, dpi=(PRINT_DPI, PRINT_DPI)),
        "print_svg": lambda img: print_export(img)[1].encode("utf-8"),
    }


def _lossless_webp(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "WEBP", lossless=True, quality=80, method=4)
    return buf.getvalue()


def export(rgba: Image.Image, target: str) -> bytes:
    """Encode a finished sticker for ``target``; returns the file's bytes.

    Targets: ``png`` and ``webp`` (lossless, original size); ``telegram`` (PNG, or WebP
    when a PNG would not fit: one side exactly 512 px, the other <= 512, <= 512 KB);
    ``whatsapp`` (512x512 WebP with a 16 px margin, <= 100 KB); ``whatsapp_tray``
    (96x96 PNG, <= 50 KB); ``discord`` (320x320 PNG, <= 512 KB); ``print_png`` (PNG tagged
    300 dpi) and ``print_svg`` (its SVG cut line, :func:`print_export`; a fully transparent
    sticker has none: :class:`FinishingError`).
    """
    spec = _check_target(target)
    img = to_rgba(ensure_image(rgba, "rgba"))
    return _exporters()[spec.name](img)


def sniff_extension(data: bytes) -> str:
    """``"png"``, ``"webp"`` or ``"svg"`` from an encoded file's signature."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:5] == b"<?xml" or data[:4] == b"<svg":
        return "svg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise FinishingError("data: not a PNG or WebP file")


def cut_path(alpha: np.ndarray, *, tolerance: float = 0.75) -> str:
    """SVG path data (pixel units) following the contours of ``alpha`` >= 50 %.

    Outer contours first (largest first), then the rims of the holes the sticker has
    (transparent regions it encloses), each a closed subpath: a cutter cuts them all.
    """
    mask = (alpha >= 128).astype(np.uint8)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    parents = hierarchy[0][:, 3] if hierarchy is not None else []
    # outer contours (no parent) first, then holes; the larger first within each
    order = sorted(
        range(len(contours)), key=lambda i: (parents[i] >= 0, -cv2.contourArea(contours[i]))
    )
    parts: list[str] = []
    for contour in (contours[i] for i in order):
        if cv2.contourArea(contour) < 4:
            continue
        poly = cv2.approxPolyDP(contour, tolerance, closed=True).reshape(-1, 2)
        # Contour points are pixel indices; +0.5 puts them on pixel centres.
        pts = [f"{x + 0.5:g} {y + 0.5:g}" for x, y in poly]
        parts.append("M " + " L ".join(pts) + " Z")
    if not parts:
        raise FinishingError("rgba: the image is fully transparent; there is no cut line")
    return " ".join(parts)


def print_export(rgba: Image.Image, *, dpi: int = PRINT_DPI) -> tuple[bytes, str]:
    """A print-ready PNG tagged ``dpi`` and an SVG cut line following its outline.

    The SVG is in pixel units (``viewBox`` = the PNG's size) with ``width``/``height`` in
    inches at ``dpi``, so it lines up with the PNG in print-and-cut software. The cut
    line traces the outer contour of the alpha (the die-cut border when there is one)
    and the rims of its holes when it has any (a cut-out made with ``holes`` ``"auto"``
    or ``"cut"`` that saw through the subject).
    """
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise FinishingError(f"dpi={dpi!r} must be a positive whole number")
    img = to_rgba(ensure_image(rgba, "rgba"))
    path = cut_path(np.asarray(img)[..., 3])
    png = _png(img, dpi=(dpi, dpi))
    w, h = img.size
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{w / dpi:.4f}in" height="{h / dpi:.4f}in" viewBox="0 0 {w} {h}">\n'
        f'  <path id="cut-line" d="{path}" fill="none" stroke="#ff00ff" '
        f'stroke-width="{max(1.0, dpi / 300):g}"/>\n'
        "</svg>\n"
    )
    return png, svg


def _identifier(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")
    return (slug or "sticker_pack")[:128]


def whatsapp_pack(
    stickers: Sequence[Image.Image],
    *,
    name: str,
    publisher: str,
    identifier: str | None = None,
    emojis: Sequence[Sequence[str]] | None = None,
    tray: Image.Image | None = None,
) -> bytes:
    """A WhatsApp sticker pack as zip bytes: ``contents.json``, ``tray.png``, ``NN.webp``.

    ``stickers``: 3 to 30 finished RGBA stickers (each becomes a 512x512 WebP <= 100 KB).
    ``name`` and ``publisher``: 1-128 characters. ``identifier``: defaults to a slug of
    the name. ``emojis``: one list of 1-3 emojis per sticker (default one smiley each,
    WhatsApp requires at least one). ``tray``: the tray icon source (default the first
    sticker), exported as a 96x96 PNG <= 50 KB.
    """
    items = list(stickers)
    if not WHATSAPP_MIN_STICKERS <= len(items) <= WHATSAPP_MAX_STICKERS:
        raise FinishingError(
            f"stickers: a WhatsApp pack needs {WHATSAPP_MIN_STICKERS} to "
            f"{WHATSAPP_MAX_STICKERS} stickers, got {len(items)}"
        )
    for label, value in (("name", name), ("publisher", publisher)):
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise FinishingError(f"{label}={value!r} must be 1 to 128 characters")
    if emojis is None:
        emoji_lists: list[list[str]] = [["\U0001f642"] for _ in items]
    else:
        emoji_lists = [list(e) for e in emojis]
        if len(emoji_lists) != len(items) or not all(1 <= len(e) <= 3 for e in emoji_lists):
            raise FinishingError("emojis must give 1 to 3 emojis for each sticker")
    ident = identifier if identifier is not None else _identifier(name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", ident):
        raise FinishingError(
            f"identifier={ident!r} may only use letters, digits, '_', '-' and '.' (1-128)"
        )

    buf = io.BytesIO()
    entries = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (sticker, emo) in enumerate(zip(items, emoji_lists, strict=True), start=1):
            file_name = f"{i:02d}.webp"
            zf.writestr(file_name, export(sticker, "whatsapp"))
            entries.append({"image_file": file_name, "emojis": emo})
        zf.writestr("tray.png", export(tray if tray is not None else items[0], "whatsapp_tray"))
        contents = {
            "android_play_store_link": "",
            "ios_app_store_link": "",
            "sticker_packs": [
                {
                    "identifier": ident,
                    "name": name,
                    "publisher": publisher,
                    "tray_image_file": "tray.png",
                    "image_data_version": "1",
                    "avoid_cache": False,
                    "animated_sticker_pack": False,
                    "publisher_email": "",
                    "publisher_website": "",
                    "privacy_policy_website": "",
                    "license_agreement_website": "",
                    "stickers": entries,
                }
            ],
        }
        zf.writestr("contents.json", json.dumps(contents, indent=2, ensure_ascii=False))
    return buf.getvalue()
