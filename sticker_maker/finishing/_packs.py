"""A Telegram-ready sticker pack as one zip (the WhatsApp pack is ``_export.whatsapp_pack``).

Telegram's static stickers are PNG or WebP files with one side exactly 512 px and the
other at most 512, at most 512 KB, each with one or more emojis; a set may have a
100x100 icon (PNG/WebP, ≤ 32 KB). The zip holds them in pack order with the emojis
listed, ready for the @Stickers bot (``/newpack``, then each file and its emoji) or a
bot's ``createNewStickerSet``:

* ``01.png`` … (or ``.webp`` when a PNG would not fit the byte limit)
* ``icon.png``: the set's 100x100 icon, from the first sticker
* ``emojis.txt``: ``01.png 😄 happy`` a line
* ``pack.json``: ``{"name", "format": "static", "stickers": [{"file", "emoji_list",
  "expression"}]}`` (the field names of the Bot API's ``InputSticker``)
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence

from PIL import Image

from ._errors import FinishingError
from ._export import KB, _clean, _on_canvas, _png_under, export, sniff_extension

#: Telegram's most stickers in a static set
TELEGRAM_MAX_STICKERS = 120
#: the set icon's side and byte limit
ICON_SIDE = 100
ICON_BYTES = 32 * KB


def telegram_pack(
    stickers: Sequence[Image.Image],
    *,
    name: str,
    emojis: Sequence[str],
    names: Sequence[str] | None = None,
) -> bytes:
    """The zip bytes (see the module doc). ``emojis``: one per sticker; ``names``: each
    sticker's expression (listed beside its emoji)."""
    items = list(stickers)
    if not 1 <= len(items) <= TELEGRAM_MAX_STICKERS:
        raise FinishingError(
            f"stickers: a Telegram set holds 1 to {TELEGRAM_MAX_STICKERS} stickers, "
            f"got {len(items)}"
        )
    if len(emojis) != len(items) or not all(isinstance(e, str) and e for e in emojis):
        raise FinishingError("emojis: give one emoji for each sticker")
    labels = list(names) if names is not None else [""] * len(items)
    if not isinstance(name, str) or not name.strip() or len(name) > 64 * 2:
        raise FinishingError(f"name={name!r} must be 1 to 128 characters")

    buf = io.BytesIO()
    entries = []
    lines = []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (sticker, emoji, label) in enumerate(zip(items, emojis, labels, strict=True), 1):
            data = export(sticker, "telegram")
            file_name = f"{i:02d}.{sniff_extension(data)}"
            zf.writestr(file_name, data)
            entries.append({"file": file_name, "emoji_list": [emoji], "expression": label})
            lines.append(f"{file_name} {emoji} {label}".rstrip())
        icon = _png_under(_clean(_on_canvas(items[0], ICON_SIDE, 0)), ICON_BYTES, "icon")
        zf.writestr("icon.png", icon)
        zf.writestr("emojis.txt", "\n".join(lines) + "\n")
        pack = {"name": name, "format": "static", "icon": "icon.png", "stickers": entries}
        zf.writestr("pack.json", json.dumps(pack, ensure_ascii=False, indent=2))
    return buf.getvalue()


__all__ = ["TELEGRAM_MAX_STICKERS", "telegram_pack"]
