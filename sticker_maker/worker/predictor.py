"""Predictor: ``setup()`` once, ``predict()`` per job (the cog shape).

Generation (engine) then finishing (cut-out), giving for each image of the
batch the opaque PNG and its transparent sticker PNG.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from sticker_maker.params import JobInput
from sticker_maker.presets import load_presets

LogFn = Callable[[str], None]


@dataclass
class Sticker:
    image_png: bytes
    sticker_png: bytes
    seed: int
    width: int
    height: int


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class Predictor:
    def __init__(self) -> None:
        self.engine: Any = None  # an Engine, set by setup()

    def setup(
        self,
        presets_file: str | None = None,
        cache_size: int = 2,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        """Read the presets and build the engine (models load on first use, then stay)."""
        from sticker_maker.engine.options import EngineOptions
        from sticker_maker.engine.pipeline import Engine

        registry = load_presets(Path(presets_file) if presets_file else None)
        options = EngineOptions(**engine_options) if engine_options else None
        self.engine = Engine(registry, cache_size=cache_size, options=options)

    def predict(
        self,
        job: JobInput,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        log: LogFn | None = None,
    ) -> list[Sticker]:
        assert self.engine is not None, "call setup() first"
        log = log or (lambda _line: None)
        preset = self.engine.presets.get(job.preset)
        started = time.perf_counter()
        loads_before = self.engine.loads
        load_seconds = self.engine.load_seconds
        images = self.engine.generate(job, on_progress=on_progress, should_cancel=should_cancel)
        loaded = [
            f"{kind} x{count - loads_before.get(kind, 0)}"
            for kind, count in self.engine.loads.items()
            if count != loads_before.get(kind, 0)
        ]
        if loaded:
            seconds = self.engine.load_seconds - load_seconds
            log(f"loaded models ({', '.join(loaded)}) in {seconds:.2f}s")
        size = f"{images[0].image.width}x{images[0].image.height}" if images else ""
        log(
            f"generated {len(images)} image(s) {size}"
            + (" (upscaled 2x and refined)" if job.upscale else "")
            + f" in {time.perf_counter() - started:.2f}s"
        )
        from sticker_maker.finishing import remove_background

        stickers = []
        for generated in images:
            t0 = time.perf_counter()
            cut = remove_background(generated.image, method=preset.background_remover)
            for note in cut.notes:
                log(f"cut-out: {note}")
            log(f"cut-out ({cut.method_used}) in {(time.perf_counter() - t0) * 1000:.0f} ms")
            stickers.append(
                Sticker(
                    image_png=png_bytes(generated.image.convert("RGB")),
                    sticker_png=png_bytes(cut.image),
                    seed=generated.seed,
                    width=generated.image.width,
                    height=generated.image.height,
                )
            )
        return stickers
