"""Where the engine tests run: the CPU by default; a GPU machine runs the same tests on CUDA.

``STICKER_MAKER_TEST_DEVICE=cuda`` (``bench/gpu_check.py`` sets it) moves the engine, lane,
batching and upscale tests to CUDA in float16 (``STICKER_MAKER_TEST_DTYPE`` picks another
dtype); the autouse fixture in ``conftest.py`` also sets ``STICKER_MAKER_DEVICE`` and
``STICKER_MAKER_DTYPE`` so servers and workers the tests start run there too. Unset, nothing
changes: the CPU in float32.
"""

from __future__ import annotations

import os
from typing import Any

TEST_DEVICE = os.environ.get("STICKER_MAKER_TEST_DEVICE", "cpu").strip() or "cpu"
TEST_DTYPE = os.environ.get("STICKER_MAKER_TEST_DTYPE", "").strip() or (
    "float16" if TEST_DEVICE.startswith("cuda") else "auto"
)
ON_CPU = TEST_DEVICE == "cpu"


def engine_options(**overrides: Any) -> Any:
    """``EngineOptions`` on the test device and dtype (``overrides``: the other options)."""
    from sticker_maker.engine.options import EngineOptions

    return EngineOptions(**{"device": TEST_DEVICE, "dtype": TEST_DTYPE, **overrides})
