"""Real-size SDXL through the production engine: seconds per step and per sticker, memory.

Builds SDXL from its published configuration (``bench/configs/sdxl-base-1.0.json``, from
``stabilityai/stable-diffusion-xl-base-1.0``: UNet 2,567,463,684 parameters, both CLIP text
encoders, the VAE) with random weights, plus a random rank-64 sticker LoRA in kohya layout on
every transformer Linear (see ``bench/_sdxl.py``), saves them in the real formats (a diffusers
folder of float16 safetensors, a LoRA ``.safetensors``; cached under ``.cache/bench/fullsize``)
and writes a presets file whose ``sticker-maker`` preset points at them. Then it runs one
sticker through the worker's ``Predictor`` (what ``sticker-maker serve`` runs per job:
engine, then cut-out) and reports the time per denoising step (the UNet calls, timed by
forward hooks), per sticker (generation + cut-out), the VAE decode and the cut-out, and peak
memory. Speed depends on the shapes, not the weights' values: this times the real model.

    python bench/fullsize.py --device cpu --size 256 --steps 2 --json   # ~10 min on 2 cores
    python bench/fullsize.py --device cuda                              # 1024², 20 steps
    python bench/fullsize.py --config bench/configs/sdxl-tiny.json --size 64   # seconds

With ``--json`` the last line is one JSON object (``unet_params``, ``lora_layout``,
``lora_rank``, ``seconds_per_step``, ``seconds_per_image``, ``finite_output``,
``peak_rss_gib`` on the CPU or ``peak_vram_gib`` on CUDA, and more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _sdxl  # noqa: E402

HOSTED_SECONDS = "13-16 s"  # hosted sticker-maker / Segmind predictions, 1024², 20 steps
FLOOR_SECONDS = 0.28  # 20 SDXL steps with guidance + decode at 989 TFLOP/s dense fp16/bf16
STICKER_TEMPLATES = {
    "prompt_template": "Sticker, {prompt}, svg, solid color background",
    "negative_template": "nsfw, nude, {negative_prompt}, photo, photography",
}


def write_presets(path: Path, base: str, lora: str, lora_b: str) -> Path:
    """Presets on the given weights: the built-in ``sticker-maker`` recipe, the same without
    a LoRA (``fullsize-nolora``) and with the other LoRA (``fullsize-lora-b``), and the
    built-in ``sticker-maker-fast`` (4 steps, Euler trailing, no guidance) with ``lora_b``
    standing in for SDXL-Lightning's 4-step LoRA (stacked, fused like it)."""
    templates = "".join(f'{k} = "{v}"\n' for k, v in STICKER_TEMPLATES.items())
    path.write_text(
        f'[presets.sticker-maker]\nbase = "{base}"\nlora = "{lora}"\n\n'
        f'[presets.fullsize-nolora]\nbase = "{base}"\n{templates}'
        'scheduler = "DPM++ 2M SDE Karras"\n\n'
        f'[presets.fullsize-lora-b]\nbase = "{base}"\nlora = "{lora_b}"\n{templates}'
        'scheduler = "DPM++ 2M SDE Karras"\n\n'
        f'[presets.sticker-maker-fast]\nbase = "{base}"\nlora = "{lora}"\n'
        f'loras = [{{ lora = "{lora_b}", scale = 1.0 }}]\n'
    )
    return path


def prepare(config: Path = _sdxl.CONFIG, rank: int = 64) -> dict[str, Any]:
    """Build (or reuse) the weights, a second LoRA, and the presets file beside them."""
    built = _sdxl.ensure_built(config, rank=rank)
    root = Path(built["base"]).parent
    lora_b = root / "sticker-lora-b-kohya.safetensors"
    if not lora_b.exists():
        partial = lora_b.with_suffix(".partial")
        _sdxl.build_kohya_lora(_sdxl.load_config(config), partial, rank=rank, seed=2)
        partial.rename(lora_b)
    presets = write_presets(root / "presets.toml", built["base"], built["lora"], str(lora_b))
    return {**built, "presets": str(presets), "lora_b": str(lora_b)}


class Timings:
    """Forward hooks on the UNet and the VAE decoder: each call's seconds, and whether every
    decoded image was finite (no NaN/inf). On CUDA the hooks synchronise the device."""

    def __init__(self, pipe: Any, cuda: bool | None = None) -> None:
        import torch

        # (offloaded models sit on the CPU between calls: the caller knows the device)
        self.cuda = pipe.unet.device.type == "cuda" if cuda is None else cuda
        self.unet: list[float] = []
        self.decode: list[float] = []
        #: CPU seconds of this process (all threads) per UNet call: the work, whatever the
        #: machine's load (on a shared CPU the wall time above depends on the neighbours)
        self.unet_cpu: list[float] = []
        self.finite = True
        self._torch = torch
        self._handles = []
        for module, into in ((pipe.unet, self.unet), (pipe.vae.decoder, self.decode)):
            self._handles.append(module.register_forward_pre_hook(self._start))
            self._handles.append(module.register_forward_hook(self._stop(into)))
        self._began = 0.0
        self._cpu_began = 0.0

    def _sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def _start(self, *_args: Any) -> None:
        self._sync()
        self._began = time.perf_counter()
        self._cpu_began = time.process_time()

    def _stop(self, into: list[float]) -> Any:
        def hook(module: Any, _inputs: Any, output: Any) -> None:
            self._sync()
            into.append(time.perf_counter() - self._began)
            if into is self.unet:
                self.unet_cpu.append(time.process_time() - self._cpu_began)
            if into is self.decode:
                sample = output[0] if isinstance(output, tuple) else output
                self.finite &= bool(self._torch.isfinite(sample).all())

        return hook

    def reset(self) -> None:
        self.unet.clear()
        self.unet_cpu.clear()
        self.decode.clear()
        self.finite = True

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def peak_memory(device: str) -> dict[str, float]:
    gib = 1024**3
    out = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib}
    if device.startswith("cuda"):
        import torch

        out["peak_vram_gib"] = torch.cuda.max_memory_allocated() / gib
    return out


def run(
    built: dict[str, Any],
    *,
    device: str = "auto",
    dtype: str = "auto",
    size: int = 1024,
    steps: int = 20,
    compile_unet: bool = False,
    repeats: int = 1,
    warmup: int = 0,
    preset: str = "sticker-maker",
) -> dict[str, Any]:
    """One sticker (``repeats`` times after ``warmup``) through the worker's Predictor."""
    import io

    import torch
    from PIL import Image

    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.params import parse_request, resolve
    from sticker_maker.worker import stickers as finishing_steps
    from sticker_maker.worker.predictor import Predictor

    options = EngineOptions(device=device, dtype=dtype, compile=compile_unet)
    predictor = Predictor()
    predictor.setup(built["presets"], cache_size=1, engine_options=options.to_dict())
    engine = predictor.engine
    placement = engine.placement
    began = time.perf_counter()
    engine.warm(preset)
    load_seconds = time.perf_counter() - began
    recipe = engine.presets.get(preset)
    pipe = engine.models.prepare(recipe, recipe.lora_scale).pipe
    timings = Timings(pipe)
    job = resolve(
        parse_request(
            {"preset": preset, "prompt": "a cute cat", "seed": 1, "width": size, "height": size}
            | ({"steps": steps} if preset != "sticker-maker-fast" else {})
        ),
        engine.presets,
    )
    per_image, step_times, step_cpu, decode_times, cutouts = [], [], [], [], []
    stickers: list[Any] = []
    for n in range(warmup + repeats):
        timings.reset()
        started = time.perf_counter()
        stickers = predictor.predict(job)
        seconds = time.perf_counter() - started
        image = Image.open(io.BytesIO(stickers[0].image_png or b""))
        t0 = time.perf_counter()
        finishing_steps.finish(image, recipe, None, lambda _line: None)
        cutout = time.perf_counter() - t0
        if n >= warmup:
            per_image.append(seconds)
            step_times += timings.unet
            step_cpu += timings.unet_cpu
            decode_times += timings.decode
            cutouts.append(cutout)
    sticker = Image.open(io.BytesIO(stickers[0].sticker_png))
    timings.close()
    counts = built["counts"]
    result: dict[str, Any] = {
        "model": "SDXL base 1.0 architecture, random weights",
        "config": Path(built.get("config", _sdxl.CONFIG)).name,
        "unet_params": counts["unet"],
        "text_encoder_params": counts["text_encoder"],
        "text_encoder_2_params": counts["text_encoder_2"],
        "vae_params": counts["vae"],
        "lora_layout": "kohya",
        "lora_rank": built["lora_rank"],
        "lora_layers": built["lora_layers"],
        "device": str(placement.device),
        "dtype": str(placement.dtype).removeprefix("torch."),
        "lora_fused": placement.fuse_lora,
        "compile": placement.compile,
        "preset": preset,
        "scheduler": job.scheduler,
        "guidance_scale": job.guidance_scale,
        "size": size,
        "steps": job.steps,
        "repeats": repeats,
        "seconds_per_step": statistics.median(step_times),
        "cpu_seconds_per_step": statistics.median(step_cpu),
        "unet_calls": len(step_times) // max(1, repeats),
        "seconds_per_image": statistics.median(per_image),
        "vae_decode_ms": statistics.median(decode_times) * 1000,
        "cutout_ms": statistics.median(cutouts) * 1000,
        "load_seconds": load_seconds,
        "build_seconds": built.get("build_seconds", 0.0),
        "finite_output": timings.finite,
        "sticker_mode": sticker.mode,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
    }
    return result | peak_memory(str(placement.device))


def summary(r: dict[str, Any]) -> str:
    mem = (
        f"peak VRAM {r['peak_vram_gib']:.1f} GiB"
        if "peak_vram_gib" in r
        else f"peak RSS {r['peak_rss_gib']:.1f} GiB"
    )
    return (
        f"SDXL (UNet {r['unet_params']:,} params) + kohya LoRA rank {r['lora_rank']}, "
        f"{r['device']} {r['dtype']}, {r['size']}² x {r['steps']} steps ({r['scheduler']}): "
        f"{r['seconds_per_step']:.3f} s/step, {r['seconds_per_image']:.2f} s/sticker "
        f"(hosted {HOSTED_SECONDS}; H100 floor {FLOOR_SECONDS} s at 1024² x 20), "
        f"VAE decode {r['vae_decode_ms']:.0f} ms, cut-out {r['cutout_ms']:.0f} ms, "
        f"load {r['load_seconds']:.1f} s, finite output: {r['finite_output']}, {mem}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), ...")
    parser.add_argument("--size", type=int, default=1024, help="image side in px")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=None, help="default: 1 on CUDA, 0 on CPU")
    parser.add_argument("--rank", type=int, default=64, help="LoRA rank")
    parser.add_argument(
        "--preset",
        default="sticker-maker",
        help="sticker-maker, fullsize-nolora, sticker-maker-fast",
    )
    parser.add_argument("--config", type=Path, default=_sdxl.CONFIG, help="model configuration")
    parser.add_argument("--json", action="store_true", help="last line: the result as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started, cpu_started = time.perf_counter(), time.process_time()
    built = prepare(args.config, args.rank)
    print(
        f"weights: {built['base']} ({'cached' if built['cached'] else 'built'}"
        f" in {built['build_seconds']:.1f} s)",
        flush=True,
    )
    cuda = args.device.startswith("cuda")
    warmup = args.warmup if args.warmup is not None else int(cuda)
    result = run(
        built,
        device=args.device,
        dtype=args.dtype,
        size=args.size,
        steps=args.steps,
        compile_unet=args.compile,
        repeats=args.repeats,
        warmup=warmup,
        preset=args.preset,
    )
    result["wall_seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started
    print(summary(result), flush=True)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
