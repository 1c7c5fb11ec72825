"""sticker-maker as a Cog model: fofr/sticker-maker's v2 inputs, transparent stickers out.

``cog.yaml`` points here. ``setup()`` builds the engine once (weights load on the first
prediction and stay); ``predict()`` runs one job through the same translation as the
Replicate-compatible API's v2 version (``sticker_maker.api.replicate_models``) and the
same predictor as the service's worker, and returns the sticker files. Presets (which
weights): ``STICKER_MAKER_PRESETS``, as for ``sticker-maker serve``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FilePath
from typing import Optional

from cog import BasePredictor, Input, Path

from sticker_maker.api.replicate_models import V2_ID, Catalogue
from sticker_maker.presets import load_presets

#: the model whose v2 version this is
MODEL = "fofr/sticker-maker"


class Predictor(BasePredictor):
    def setup(self) -> None:
        from sticker_maker.worker.predictor import Predictor as Engine

        presets_file = os.environ.get("STICKER_MAKER_PRESETS") or None
        self.presets = load_presets(FilePath(presets_file) if presets_file else None)
        self.version = Catalogue(self.presets).version(V2_ID, MODEL)
        self.engine = Engine()
        self.engine.setup(presets_file=presets_file)

    def predict(
        self,
        prompt: str = Input(default="a cute cat", description="Prompt"),
        negative_prompt: str = Input(default="", description="Things you do not want"),
        width: int = Input(default=1152, ge=64, le=2048, description="Width (multiple of 8)"),
        height: int = Input(default=1152, ge=64, le=2048, description="Height (multiple of 8)"),
        steps: int = Input(default=17, ge=1, le=100, description="Denoising steps"),
        number_of_images: int = Input(default=1, ge=1, le=10, description="Number of images"),
        output_format: str = Input(
            default="webp", choices=["webp", "jpg", "png"], description="Format of the outputs"
        ),
        output_quality: int = Input(
            default=90, ge=0, le=100, description="Quality of webp/jpg outputs, 0 to 100"
        ),
        seed: Optional[int] = Input(  # noqa: UP045  (Cog reads the annotation)
            default=None, description="Fix the random seed for reproducibility"
        ),
    ) -> list[Path]:
        inputs = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "width": width,
            "height": height,
            "steps": steps,
            "number_of_images": number_of_images,
            "output_format": output_format,
            "output_quality": output_quality,
        }
        if seed is not None:
            inputs["seed"] = seed
        job = self.version.job_input(inputs, self.presets)
        stickers = self.engine.predict(job, log=print)
        folder = Path(tempfile.mkdtemp(prefix="stickers-"))
        paths = []
        for i, sticker in enumerate(stickers):
            path = folder / f"sticker-{sticker.seed}-{i}.{sticker.ext}"
            path.write_bytes(sticker.sticker_png)
            paths.append(path)
        return paths
