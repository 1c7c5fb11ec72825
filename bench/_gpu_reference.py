"""The reference-picture row of ``bench/gpu_check.py``: a job with a picture at full size.

The IP-Adapter is built here with random weights in h94/IP-Adapter's layout and real
architecture (``tests/tiny_models.build_ip_adapter``): the ViT-H/14 image encoder
(``models/image_encoder``: CLIPVisionModelWithProjection, hidden 1280, 32 layers, 16 heads,
patch 14, 224 px, projection 1024) and the SDXL "plus" and "plus-face" files (Perceiver
Resampler: 16 queries of width 1280, 4 layers of 20 heads x 64, to the UNet's 2048;
``to_k_ip``/``to_v_ip`` in each of the UNet's cross-attention layers), in float16. The
dry run (``--device cpu``) builds the tiny one of the tests instead.

Rows: the first reference job (IP-Adapter load included), a reference job's seconds against
a prompt-only one at the same size and steps, and both in one batch (one loop: both lanes
share each step), with peak VRAM.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import _gpu_engine as ge  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

#: the ViT-H/14 image encoder of h94/IP-Adapter (models/image_encoder/config.json)
VIT_H = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}


def build(base: Path, full: bool) -> Path:
    """The IP-Adapter folder for the SDXL folder ``base`` (built once beside it: a
    ``done.json`` marks it)."""
    from tiny_models import (  # type: ignore[import-not-found]
        build_ip_adapter,
        build_tiny_ip_adapter,
    )

    dest = base.parent / ("ip-adapter-vit-h" if full else "ip-adapter-tiny")
    if (dest / "done.json").exists():
        return dest
    began = time.perf_counter()
    if full:
        unet = json.loads((base / "unet" / "config.json").read_text())
        build_ip_adapter(unet, dest, encoder=VIT_H, dim=1280, heads=20, queries=16, dtype="float16")
    else:
        build_tiny_ip_adapter(base, dest)
    (dest / "done.json").write_text(json.dumps({"seconds": time.perf_counter() - began}))
    return dest


def presets(setup: ge.Setup, base: str, lora: str, ip_adapter: Path) -> Path:
    """The built-in ``face-to-sticker`` preset on the built weights."""
    path = setup.presets.parent / "presets-reference.toml"
    path.write_text(
        setup.presets.read_text()
        + f"""
[presets.face-to-sticker]
base = "{base}"
lora = "{lora}"
ip_adapter = "{ip_adapter}"
width = {setup.size}
height = {setup.size}
"""
    )
    return path


def picture() -> bytes:
    """A real photo of a face when scikit-image is there, else a drawn one."""
    from PIL import Image, ImageDraw

    try:
        from skimage import data  # type: ignore[import-untyped]

        image = Image.fromarray(data.astronaut())
    except ImportError:
        image = Image.new("RGB", (512, 512), (90, 140, 200))
        ImageDraw.Draw(image).ellipse((170, 110, 340, 320), fill=(230, 190, 160))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def rows(setup: ge.Setup, built: dict[str, Any], full: bool) -> list[ge.Row]:
    import numpy as np

    from sticker_maker.params import Reference

    began = time.perf_counter()
    ip = build(Path(built["base"]), full)
    build_note = f"IP-Adapter {'ViT-H plus + plus-face' if full else 'tiny'} in {ip.name}"
    reference = Reference(image="me.png", ip_adapter_weight=0.2, ip_adapter_noise=0.5)
    face = picture()
    eng = ge.engine(ge.Setup(presets(setup, built["base"], built["lora"], ip), **_rest(setup)))
    out: list[ge.Row] = []
    try:
        logs: list[str] = []
        with_picture = ge.job(eng, setup, preset="face-to-sticker", steps=setup.steps)
        with_picture = with_picture.model_copy(update={"reference": reference})
        plain = ge.job(eng, setup, preset="face-to-sticker", steps=setup.steps)
        eng.generate(plain)  # loads the base and LoRA
        first = time.perf_counter()
        eng.generate(with_picture, picture=face, on_log=logs.append)
        first = time.perf_counter() - first
        out.append(
            (
                "reference job, first (IP-Adapter load)",
                f"{first:.2f} s",
                f"{build_note}, built/cached in {time.perf_counter() - began - first:.0f} s; "
                + "; ".join(line for line in logs if "face" in line)[:160],
                None,
            )
        )
        ge.reset_peak(eng)
        timed = {}
        for name, job, kw in (
            ("ref", with_picture, {"picture": face}),
            ("plain", plain, {}),
        ):
            started = time.perf_counter()
            images = eng.generate(job, **kw)
            timed[name] = time.perf_counter() - started
            finite = all(np.isfinite(np.asarray(g.image, dtype=np.float32)).all() for g in images)
        out.append(
            (
                f"{setup.size}² {setup.steps}-step reference job vs prompt-only",
                f"{timed['ref']:.2f} s vs {timed['plain']:.2f} s "
                f"(x{timed['ref'] / timed['plain']:.2f})",
                f"peak {ge.gib(ge.peak_gib(eng))}",
                finite,
            )
        )
        from sticker_maker.engine.pipeline import JobResult, Request

        results = [JobResult(), JobResult()]
        requests = [
            Request(with_picture, lambda r: results.__setitem__(0, r), picture=face),
            Request(plain, lambda r: results.__setitem__(1, r)),
        ]
        started = time.perf_counter()
        eng.run(requests)
        both = time.perf_counter() - started
        errors = [r.error for r in results if r.error is not None]
        out.append(
            (
                "reference + prompt-only jobs in one loop",
                f"{both:.2f} s, {results[0].batched} jobs per step",
                f"errors: {errors[0]}" if errors else f"peak {ge.gib(ge.peak_gib(eng))}",
                not errors and results[0].batched == 2,
            )
        )
    finally:
        ge.drop(eng)
    return out


def _rest(setup: ge.Setup) -> dict[str, Any]:
    return {
        "device": setup.device,
        "dtype": setup.dtype,
        "size": setup.size,
        "steps": setup.steps,
        "short_steps": setup.short_steps,
    }
