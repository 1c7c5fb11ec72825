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
