"""Generated PNGs carry how they were made in the ``parameters`` text chunk, in the
AUTOMATIC1111 layout other Stable Diffusion tools read."""

from __future__ import annotations

import io

from PIL import Image

from sticker_maker.params import parse_request, resolve
from sticker_maker.presets import Preset, PresetRegistry
from sticker_maker.worker.predictor import parameters_text, sticker_output


def _job_and_preset():  # type: ignore[no-untyped-def]
    preset = Preset(
        name="sticker-maker",
        base="stabilityai/stable-diffusion-xl-base-1.0",
        lora="owner/sticker-lora",
        lora_weight_name="stickers.safetensors",
        lora_scale=0.8,
    )
    body = {
        "preset": "sticker-maker",
        "prompt": "a cat, smiling",
        "negative_prompt": "blurry",
        "steps": 20,
        "guidance_scale": 7.5,
        "scheduler": "Euler a",
        "seed": 1234,
        "width": 1024,
        "height": 768,
    }
    return resolve(parse_request(body), PresetRegistry([preset])), preset


def test_parameters_in_the_a1111_layout() -> None:
    job, preset = _job_and_preset()
    text = parameters_text(job, preset, 1235, (1024, 768), "job-42")
    prompt, negative, pairs = text.split("\n")
    assert prompt == "a cat, smiling"
    assert negative == "Negative prompt: blurry"
    assert pairs.startswith("Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1235, ")
    assert "Size: 1024x768, Model: stabilityai/stable-diffusion-xl-base-1.0, " in pairs
    assert "Lora: owner/sticker-lora/stickers.safetensors, Lora scale: 0.8" in pairs
    assert pairs.endswith("Preset: sticker-maker, Job id: job-42")


def test_both_pngs_of_a_generated_sticker_carry_them() -> None:
    job, preset = _job_and_preset()
    text = parameters_text(job, preset, 1234, (64, 64), "job-1")
    image = Image.new("RGB", (64, 64), "white")
    sticker = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    out = sticker_output(image, sticker, 1234, parameters=text)
    for data in (out.image_png, out.sticker_png):
        assert data is not None
        assert Image.open(io.BytesIO(data)).text["parameters"] == text
    # uploads (cut-outs, splits) were not generated: no parameters
    upload = sticker_output(None, sticker).sticker_png
    assert "parameters" not in Image.open(io.BytesIO(upload)).text


def test_a_pack_stickers_parameters_name_its_prompt_expression_and_reference() -> None:
    from sticker_maker.params import Expression, Reference
    from sticker_maker.presets import load_presets

    presets = load_presets()
    job = resolve(
        parse_request({"prompt": "a fox", "preset": "face-to-sticker", "seed": 9}), presets
    )
    job = job.model_copy(
        update={
            "expressions": (
                Expression(name="happy", emoji="😀", prompt="smiling"),
                Expression(name="sad", emoji="😢", prompt="crying"),
            ),
            "samples": 2,
            "reference": Reference(image="me.png", ip_adapter_weight=0.2, ip_adapter_noise=0.5),
        }
    )
    text = parameters_text(job, presets.get("face-to-sticker"), 9, (1024, 1024), "j", 1)
    assert text.splitlines()[0] == "a fox, crying"
    assert "IP-Adapter weight: 0.2, IP-Adapter noise: 0.5, Expression: sad" in text
