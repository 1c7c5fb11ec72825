"""Presets are data: built-ins, TOML overrides and additions, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sticker_maker.errors import InvalidInput
from sticker_maker.params import parse_request, resolve
from sticker_maker.presets import load_presets


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "presets.toml"
    path.write_text(text)
    return path


def test_builtins_and_aliases() -> None:
    registry = load_presets()
    original = registry.get(3123)
    assert original.name == "sticker-maker"
    assert original.lora == "artificialguybr/StickersRedmond"
    assert original.render_prompt("cute cat") == "Sticker, cute cat, svg, solid color background"
    assert original.render_negative("") == "nsfw, nude, photo, photography"
    assert original.scheduler == "DPM++ 2M SDE Karras" and original.guidance_scale == 7
    sheet = registry.get("Norod78-SDXL-StickerSheet-Lora")
    assert sheet.lora == "Norod78/SDXL-StickerSheet-Lora" and sheet.scheduler == "UniPC"
    with pytest.raises(InvalidInput, match="available: sticker-maker"):
        registry.get("nope")


def test_toml_overrides_a_builtin_and_adds_a_preset(tmp_path: Path) -> None:
    registry = load_presets(
        write(
            tmp_path,
            """
[presets.sticker-maker]
base = "/models/albedobase"

[presets.mine]
base = "owner/model"
lora = "owner/lora/file.safetensors"
scheduler = "Euler a"
steps = 30
aliases = ["m"]
""",
        )
    )
    original = registry.get("3123")
    assert original.base == "/models/albedobase"
    assert original.lora == "artificialguybr/StickersRedmond"  # untouched keys stay
    mine = registry.get("m")
    assert (mine.name, mine.steps, mine.scheduler) == ("mine", 30, "Euler a")
    job = resolve(parse_request({"preset": "m", "prompt": "x"}), registry)
    assert job.steps == 30 and job.preset == "mine"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[presets.a]\nbase='x'\ncolour='red'\n", "unknown key(s) colour; allowed:"),
        ("[presets.a]\nsteps=3\n", "needs a 'base'"),
        ("[presets.a]\nbase='x'\nscheduler='Fast'\n", "scheduler 'Fast' is unknown"),
        ("[presets.a]\nbase='x'\nprompt_template='no slot'\n", "must contain {prompt}"),
        ("presets = 3\n", "must contain [presets.NAME] tables"),
        ("[presets.a\n", "not valid TOML"),
    ],
)
def test_bad_presets_file_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_presets(write(tmp_path, text))
    assert fragment in info.value.message


def test_missing_presets_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_presets(tmp_path / "none.toml")


def test_builtin_fast_preset_stacks_the_lightning_lora_without_guidance() -> None:
    registry = load_presets()
    fast = registry.get("fast")
    assert registry.get("sticker-maker-fast") is fast
    assert (fast.scheduler, fast.steps, fast.guidance_scale) == ("Euler", 4, 0.0)
    assert dict(fast.scheduler_options) == {"timestep_spacing": "trailing"}
    stack = fast.lora_stack(0.5)
    assert [(r.lora, r.weight_name, r.scale) for r in stack] == [
        ("artificialguybr/StickersRedmond", "StickersRedmond.safetensors", 0.5),
        ("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors", 1.0),
    ]
    # lora_scale 0 drops the sticker LoRA, never the few-step one
    assert [r.lora for r in fast.lora_stack(0)] == ["ByteDance/SDXL-Lightning"]
    job = resolve(parse_request({"preset": "sticker-maker-fast", "prompt": "x"}), registry)
    assert (job.steps, job.guidance_scale, job.scheduler) == (4, 0.0, "Euler")


def test_toml_stacks_loras_and_sets_sampler_options(tmp_path: Path) -> None:
    registry = load_presets(
        write(
            tmp_path,
            """
[presets.quick]
base = "owner/model"
lora = "/models/style.safetensors"
lora_scale = 0.8
loras = [
  { lora = "owner/speed/speed.safetensors", scale = 1.0 },
  { lora = "owner/detail", weight_name = "d.safetensors", scale = 0.25 },
]
scheduler_options = { timestep_spacing = "trailing", eta = 0 }
guidance_scale = 1
steps = 4
""",
        )
    )
    quick = registry.get("quick")
    assert [(r.lora, r.weight_name, r.scale) for r in quick.lora_stack(0.8)] == [
        ("/models/style.safetensors", None, 0.8),
        ("owner/speed/speed.safetensors", None, 1.0),
        ("owner/detail", "d.safetensors", 0.25),
    ]
    assert dict(quick.scheduler_options) == {"eta": 0.0, "timestep_spacing": "trailing"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('loras = "x"', "loras must be a list"),
        ("loras = [{ scale = 1.0 }]", "loras[0] must be a table with lora"),
        ('loras = [{ lora = "x", weight = 1.0 }]', "loras[0] has unknown key(s) weight"),
        ('loras = [{ lora = "x", scale = "big" }]', "loras[0] scale 'big' must be a number"),
        ('scheduler_options = { spacing = "trailing" }', "unknown key 'spacing'"),
        ('scheduler_options = { timestep_spacing = "late" }', "leading, linspace or trailing"),
        ('scheduler_options = { eta = "0" }', "eta must be a number"),
    ],
)
def test_bad_lora_stack_or_sampler_options_name_the_key(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write(tmp_path, f'[presets.q]\nbase = "o/m"\n{text}\n')
    with pytest.raises(InvalidInput) as info:
        load_presets(path)
    assert fragment in str(info.value) and "[presets.q]" in str(info.value)


def test_the_readme_presets_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Presets") :]
    block = section[section.index("```toml") + len("```toml") : section.index("```\n", 10)]
    registry = load_presets(write(tmp_path, block))
    fast = registry.get("my-fast-stickers")
    assert [r.lora for r in fast.lora_stack(1.0)] == [
        "/models/my-sticker-lora.safetensors",
        "ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors",
    ]
    assert fast.guidance_scale == 0 and dict(fast.scheduler_options) == {
        "timestep_spacing": "trailing"
    }
    assert registry.get("mine").vae == "madebyollin/sdxl-vae-fp16-fix"


def test_face_to_sticker_is_built_in_with_the_originals_template_and_ip_adapter() -> None:
    preset = load_presets().get("fofr/face-to-sticker")
    assert preset.name == "face-to-sticker"
    assert preset.prompt_template == "Sticker, {prompt}, cel shaded, svg, vector art, sharp"
    assert (preset.width, preset.height, preset.steps, preset.guidance_scale) == (1024, 1024, 20, 7)
    assert (preset.ip_adapter_weight, preset.ip_adapter_noise) == (0.2, 0.5)
    assert preset.ip_adapter == "h94/IP-Adapter"
    assert preset.ip_adapter_files() == (
        ("plus", "ip-adapter-plus_sdxl_vit-h.safetensors"),
        ("plus-face", "ip-adapter-plus-face_sdxl_vit-h.safetensors"),
    )
    assert preset.ip_adapter_image_encoder == "models/image_encoder"
    assert preset.reference_problem() is None
    assert load_presets().get("sticker-maker").reference_problem() is None
    problem = load_presets().get("stickersheet").reference_problem()
    assert problem is not None and "cannot make stickers of a picture" in problem
    assert "'Norod78-SDXL-StickerSheet-Lora'" in problem


def test_the_readme_ip_adapter_example_loads_and_bad_keys_are_named(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Reference pictures: IP-Adapter") :]
    block = section[section.index("```toml") + len("```toml") : section.index("```\n", 10)]
    preset = load_presets(write(tmp_path, block)).get("face-to-sticker")
    assert preset.ip_adapter == "/models/IP-Adapter" and preset.ip_adapter_weight == 0.2
    bad = write(tmp_path, '[presets.q]\nbase = "o/m"\nip_adapter = "h94/IP-Adapter"\n')
    with pytest.raises(InvalidInput) as info:
        load_presets(bad)
    assert "ip_adapter_weights" in str(info.value)
    bad = write(tmp_path, '[presets.q]\nbase = "o/m"\nip_adapter_weight = 2\n')
    with pytest.raises(InvalidInput) as info:
        load_presets(bad)
    assert "ip_adapter_weight 2 must be a number in [0, 1]" in str(info.value)
