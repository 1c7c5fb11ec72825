"""Finishing stage: background removal, die-cut, sheet splitting and exports.

The model-free path needs only numpy, OpenCV and Pillow. Learned removers (rembg
sessions, local ONNX files) are loaded lazily and only when asked for.

>>> from sticker_maker.finishing import remove_background, die_cut, export
>>> result = remove_background(image)           # doctest: +SKIP
>>> sticker = die_cut(result.image)             # doctest: +SKIP
>>> data = export(sticker, "telegram")          # doctest: +SKIP
"""

from __future__ import annotations

from ._cutout import HOLES, METHODS, CutoutResult, cut_out, remove_background
from ._diecut import die_cut, trim
from ._errors import FinishingError
from ._export import TARGETS, export, print_export, whatsapp_pack
from ._model import SaliencyModel, load_model
from ._sheet import split_sheet

__all__ = [
    "HOLES",
    "METHODS",
    "TARGETS",
    "CutoutResult",
    "FinishingError",
    "SaliencyModel",
    "cut_out",
    "die_cut",
    "export",
    "load_model",
    "print_export",
    "remove_background",
    "split_sheet",
    "trim",
    "whatsapp_pack",
]
