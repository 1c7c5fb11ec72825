"""Presets are data: a base checkpoint, a LoRA, prompt templates and sampler defaults.

Two are built in (the hosted models users know). A TOML file (``--presets`` or
``$STICKER_MAKER_PRESETS``) overrides keys of a built-in preset or adds new ones::

    [presets.sticker-maker]
    base = "/models/albedobase-xl-v13"          # Hub id or local diffusers folder

    [presets.my-stickers]
    base = "stabilityai/stable-diffusion-xl-base-1.0"
    lora = "/models/my-sticker-lora.safetensors" # local file (diffusers or kohya keys)
    lora_scale = 0.8
    prompt_template = "sticker of {prompt}, white background"
    negative_template = "photo, {negative_prompt}"
    scheduler = "Euler a"
    guidance_scale = 6.0
    steps = 25
    aliases = ["mine"]
    vae = "madebyollin/sdxl-vae-fp16-fix"     # optional: a VAE that is safe in float16
    upscaler = "/models/4x-AnimeSharp.pth"     # upscale=true: ESRGAN-family model ...
    refiner = "/models/dreamshaper-8"          # ... then a tiled SD1.5 img2img refine
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sticker_maker.errors import InvalidInput
from sticker_maker.schedulers import SCHEDULER_NAMES

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"


@dataclass(frozen=True)
class Preset:
    """One generation recipe. Every field can be set from TOML."""

    name: str
    base: str
    lora: str | None = None
    #: file inside a Hub LoRA repo (``lora = "owner/repo"``); ignored for local files
    lora_weight_name: str | None = None
    lora_scale: float = 1.0
    prompt_template: str = "{prompt}"
    negative_template: str = "{negative_prompt}"
    scheduler: str = "Euler"
    guidance_scale: float = 7.0
    steps: int = 20
    width: int = 1024
    height: int = 1024
    aliases: tuple[str, ...] = ()
    #: ESRGAN-family model (Hub "owner/repo/file.pth" or local path) for upscale=true
    upscaler: str | None = None
    #: SD1.5 img2img pipeline (Hub id or local folder) that refines the upscaled image
    refiner: str | None = None
    #: replacement VAE (Hub id or local folder), e.g. "madebyollin/sdxl-vae-fp16-fix"; by
    #: default the base's own VAE, decoded in float32 when its config asks (force_upcast)
    vae: str | None = None
    #: upscale=true: tile size in px (upscaler input and refiner tiles), multiple of 8
    upscale_tile: int = 512
    #: upscale=true: context/overlap around each tile in px, blended; multiple of 8
    upscale_padding: int = 32
    #: upscale=true: how much the refiner changes each tile (img2img strength, 0-1]
    upscale_denoise: float = 0.2
    #: cut-out method: "auto", "model", "none", or a model name / ONNX path for "model"
    background_remover: str = "auto"
    #: credits charged per GPU-second of predict time
    price_per_second: float = 1.0
    #: content safety level this preset needs at least (off|relaxed|standard|strict): it
    #: makes a key's level stricter, never looser; None = the key's (README, "Content safety")
    safety: str | None = None

    def upscale_problem(self) -> str | None:
        """Why ``upscale=true`` cannot run with this preset (None when it can)."""
        missing = [k for k in ("upscaler", "refiner") if not getattr(self, k)]
        if not missing:
            return None
        return (
            f"preset {self.name!r} has no {' and no '.join(missing)} configured, so it cannot "
            f"upscale; set {' and '.join(missing)} under [presets.{self.name}] in the presets "
            '(e.g. upscaler = "Kim2091/AnimeSharp/4x-AnimeSharp.pth", '
            'refiner = "Lykon/dreamshaper-8") or send upscale=false'
        )

    def render_prompt(self, prompt: str) -> str:
        return _render(self.prompt_template, prompt=prompt)

    def render_negative(self, negative_prompt: str) -> str:
        return _render(self.negative_template, negative_prompt=negative_prompt)


def _render(template: str, **values: str) -> str:
    """Fill a template and tidy the commas an empty value leaves (``"a, , b"`` → ``"a, b"``)."""
    text = template.format(**values)
    if "," not in template:
        return text.strip()
    return ", ".join(part.strip() for part in text.split(",") if part.strip())


BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        name="sticker-maker",
        base=SDXL_BASE,
        lora="artificialguybr/StickersRedmond",
        lora_weight_name="StickersRedmond.safetensors",
        lora_scale=1.0,
        prompt_template="Sticker, {prompt}, svg, solid color background",
        negative_template="nsfw, nude, {negative_prompt}, photo, photography",
        scheduler="DPM++ 2M SDE Karras",
        guidance_scale=7.0,
        steps=20,
        aliases=("3123", "fofr/sticker-maker"),
        upscaler="Kim2091/AnimeSharp/4x-AnimeSharp.pth",
        refiner="Lykon/dreamshaper-8",
    ),
    Preset(
        name="Norod78-SDXL-StickerSheet-Lora",
        base=SDXL_BASE,
        lora="Norod78/SDXL-StickerSheet-Lora",
        lora_weight_name="SDXL-StickerSheet-Lora.safetensors",
        lora_scale=1.0,
        prompt_template="{prompt}",
        negative_template="{negative_prompt}",
        scheduler="UniPC",
        guidance_scale=7.5,
        steps=20,
        aliases=("stickersheet",),
    ),
)

_FIELDS = {f.name: f for f in fields(Preset)}
_TOML_KEYS = sorted(k for k in _FIELDS if k != "name")


class PresetRegistry:
    """Presets by name and alias. ``get`` raises :class:`InvalidInput` listing the names."""

    def __init__(self, presets: list[Preset]) -> None:
        self._by_name: dict[str, Preset] = {}
        self._lookup: dict[str, Preset] = {}
        for preset in presets:
            self._by_name[preset.name] = preset
        for preset in self._by_name.values():
            for key in (preset.name, *preset.aliases):
                self._lookup[key] = preset
                self._lookup.setdefault(key.lower(), preset)

    def get(self, name: str | int, field_name: str = "preset") -> Preset:
        key = str(name)
        preset = self._lookup.get(key) or self._lookup.get(key.lower())
        if preset is None:
            raise InvalidInput(
                f"unknown preset {key!r}; available: {', '.join(self.names())}", field_name
            )
        return preset

    def names(self) -> list[str]:
        return list(self._by_name)

    def all(self) -> list[Preset]:
        return list(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str | int) and (
            str(name) in self._lookup or str(name).lower() in self._lookup
        )


def load_presets(path: Path | None = None) -> PresetRegistry:
    """Built-in presets, overridden and extended by the TOML file at ``path``."""
    presets = {p.name: p for p in BUILTIN_PRESETS}
    if path is None:
        return PresetRegistry(list(presets.values()))
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"presets file {path} does not exist", "presets") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"presets file {path} is not valid TOML: {exc}", "presets") from None
    tables = data.get("presets")
    if not isinstance(tables, dict):
        raise InvalidInput(f"presets file {path} must contain [presets.NAME] tables", "presets")
    for name, table in tables.items():
        presets[name] = _preset_from_table(name, table, presets.get(name), path)
    return PresetRegistry(list(presets.values()))


def _preset_from_table(name: str, table: Any, existing: Preset | None, path: Path) -> Preset:
    where = f"{path}: [presets.{name}]"
    if not isinstance(table, dict):
        raise InvalidInput(f"{where} must be a table", "presets")
    unknown = sorted(set(table) - set(_TOML_KEYS))
    if unknown:
        raise InvalidInput(
            f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_TOML_KEYS)}",
            "presets",
        )
    values: dict[str, Any] = dict(table)
    if "aliases" in values:
        values["aliases"] = tuple(str(a) for a in values["aliases"])
    if existing is None:
        if "base" not in values:
            raise InvalidInput(f"{where} needs a 'base' (Hub id or local folder)", "presets")
        preset = Preset(name=name, **values)
    else:
        preset = replace(existing, **values)
    for key in ("prompt_template",):
        if "{prompt}" not in getattr(preset, key):
            raise InvalidInput(f"{where} {key} must contain {{prompt}}", "presets")
    _check_upscale_keys(preset, where)
    from sticker_maker.safety.policy import LEVELS

    if preset.safety is not None and preset.safety not in LEVELS:
        raise InvalidInput(
            f"{where} safety {preset.safety!r} is unknown; allowed: {', '.join(LEVELS)}",
            "presets",
        )
    if preset.scheduler not in SCHEDULER_NAMES:
        raise InvalidInput(
            f"{where} scheduler {preset.scheduler!r} is unknown; allowed: "
            + ", ".join(SCHEDULER_NAMES),
            "presets",
        )
    return preset


def _check_upscale_keys(preset: Preset, where: str) -> None:
    problems = []
    if preset.upscale_tile < 64 or preset.upscale_tile % 8:
        problems.append(f"upscale_tile {preset.upscale_tile} must be a multiple of 8, ≥ 64")
    if preset.upscale_padding < 0 or preset.upscale_padding % 8:
        problems.append(f"upscale_padding {preset.upscale_padding} must be a multiple of 8, ≥ 0")
    if not 0 < preset.upscale_denoise <= 1:
        problems.append(f"upscale_denoise {preset.upscale_denoise} must be in (0, 1]")
    if problems:
        raise InvalidInput(f"{where} " + "; ".join(problems), "presets")
