"""Benchmark the content safety checks: accuracy on the labelled prompt set and their cost.

    python bench/safety.py [--repeat N] [--no-base]

Prints, with the machine and its load average:

* the labelled prompt set (``tests/safety/labelled_{pass,block}.txt``) through the default
  policy at the ``standard`` level: false positives and false negatives (both must be 0),
  and each one that is wrong;
* the prompt check's cost per prompt in microseconds (median and p99 over the set,
  ``--repeat`` passes; the lists only, then with a tiny text classifier);
* the image check's cost per image in milliseconds through the transformers pipeline:
  a tiny ViT (the tests' classifier), and a ViT-base/16 at 224 px with random weights:
  the size of common NSFW image classifiers (e.g. a fine-tuned ``google/vit-base-patch16-224``),
  whose weights cannot be downloaded here. ``--no-base`` skips that one (it writes 350 MB).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LABELLED = REPO / "tests" / "safety"


def labelled(name: str) -> list[str]:
    lines = (LABELLED / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def per_call(fn, items: list, repeat: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(median, p99, median CPU) seconds of ``fn(item)`` over ``repeat`` passes of ``items``.

    The CPU time (this process, all its threads) is the steadier figure on a shared,
    loaded machine: waiting for a core counts in the wall time only."""
    times, cpu = [], []
    for _ in range(repeat):
        for item in items:
            started, started_cpu = time.perf_counter(), time.process_time()
            fn(item)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    times.sort()
    return (
        statistics.median(times),
        times[min(len(times) - 1, int(len(times) * 0.99))],
        statistics.median(cpu),
    )


def accuracy(screen) -> None:  # type: ignore[no-untyped-def]
    passing, blocking = labelled("labelled_pass.txt"), labelled("labelled_block.txt")
    false_pos = [p for p in passing if screen.findings(p).refusal("standard")]
    false_neg = [p for p in blocking if not screen.findings(p).refusal("standard")]
    print(
        f"labelled set: {len(passing)} must pass, {len(blocking)} must be refused (standard)\n"
        f"  false positives: {len(false_pos)}   false negatives: {len(false_neg)}"
    )
    for prompt in false_pos:
        print(f"  FP  {prompt!r}")
    for prompt in false_neg:
        print(f"  FN  {prompt!r}")


def prompt_costs(repeat: int, tmp: Path) -> None:
    from safety.tiny_classifiers import build_text_classifier

    from sticker_maker.safety import PromptScreen, SafetySettings

    prompts = labelled("labelled_pass.txt") + labelled("labelled_block.txt")
    started = time.perf_counter()
    lists = PromptScreen.from_settings(SafetySettings())
    lists.findings("w\u0430rm up: a Cyrillic a builds the confusables table")
    print(f"prompt check set-up (lists + confusables table): {time.perf_counter() - started:.2f} s")
    accuracy(lists)
    median, p99, cpu = per_call(lists.findings, prompts, repeat)
    print(
        f"prompt check, lists only: {median * 1e6:.0f} µs median, {p99 * 1e6:.0f} µs p99 "
        f"(CPU {cpu * 1e6:.0f} µs)"
    )
    model = build_text_classifier(tmp / "text", "sfw")
    with_model = PromptScreen.from_settings(SafetySettings(text_model=str(model)))
    median, p99, cpu = per_call(with_model.findings, prompts, max(1, repeat // 5))
    print(
        f"prompt check, lists + tiny text classifier: {median * 1e3:.2f} ms median, "
        f"{p99 * 1e3:.2f} ms p99 (CPU {cpu * 1e3:.2f} ms; a real classifier costs its size)"
    )


def image_costs(repeat: int, tmp: Path, base: bool) -> None:
    import torch
    from PIL import Image
    from safety.tiny_classifiers import build_image_classifier

    from sticker_maker.safety import ImageScreen, SafetySettings

    images = [Image.new("RGB", (1024, 1024), (i * 40 % 255, 120, 200)) for i in range(4)]
    models = {"tiny ViT (32 px)": build_image_classifier(tmp / "tiny", "normal")}
    if base:
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        folder = tmp / "vit-base"
        config = ViTConfig(num_labels=2, id2label={0: "normal", 1: "nsfw"})  # ViT-base/16, 224
        ViTForImageClassification(config).save_pretrained(folder)
        ViTImageProcessor().save_pretrained(folder)
        models["ViT-base/16 (224 px, 86M parameters)"] = folder
    print(
        f"image check: 1024x1024 images, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, folder in models.items():
        screen = ImageScreen.from_settings(SafetySettings(image_model=str(folder)))
        assert screen is not None
        screen.flagged(images[:1])  # warm-up
        median, p99, cpu = per_call(lambda im, s=screen: s.flagged([im]), images, repeat)
        batch = per_call(lambda group, s=screen: s.flagged(group), [images], repeat)
        print(
            f"  {name}: {median * 1e3:.1f} ms per image (p99 {p99 * 1e3:.1f}, CPU "
            f"{cpu * 1e3:.1f}); a batch of 4: {batch[0] * 1e3 / 4:.1f} ms per image "
            f"(CPU {batch[2] * 1e3 / 4:.1f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over the prompt set")
    parser.add_argument("--no-base", action="store_true", help="skip the ViT-base image model")
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        prompt_costs(args.repeat, Path(tmp))
        image_costs(max(1, args.repeat // 4), Path(tmp), not args.no_base)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
