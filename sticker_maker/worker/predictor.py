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
        self.engine = None  # set by setup()

    def setup(self, presets_file: str | None = None, cache_size: int = 2) -> None:
        from sticker_maker.engine.pipeline import Engine

        registry = load_presets(Path(presets_file) if presets_file else None)
        self.engine = Engine(registry, cache_size=cache_size)

    def predict(
        self,
        job: JobInput,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        log: LogFn | None = None,
    ) -> list[Sticker]:
        from sticker_maker.finishing import remove_background

        assert self.engine is not None, "call setup() first"
        log = log or (lambda _line: None)
        preset = self.engine.presets.get(job.preset)
        started = time.perf_counter()
        images = self.engine.generate(job, on_progress=on_progress, should_cancel=should_cancel)
        log(f"generated {len(images)} image(s) in {time.perf_counter() - started:.2f}s")
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
