"""Presets are data: a base checkpoint, a LoRA, prompt templates and sampler defaults.

Four are built in (the hosted models users know, a 4-step one, and face-to-sticker). A TOML
file (``--presets`` or ``$STICKER_MAKER_PRESETS``) overrides keys of a built-in preset or
adds new ones::

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

    [presets.my-stickers-of-you]                 # stickers of a reference picture
    base = "stabilityai/stable-diffusion-xl-base-1.0"
    ip_adapter = "/models/IP-Adapter"          # Hub id or local copy of h94/IP-Adapter
    ip_adapter_subfolder = "sdxl_models"
    ip_adapter_weights = "ip-adapter-plus_sdxl_vit-h.safetensors"            # pets, objects
    ip_adapter_face_weights = "ip-adapter-plus-face_sdxl_vit-h.safetensors"  # faces
    ip_adapter_image_encoder = "models/image_encoder"                       # ViT-H
    ip_adapter_weight = 0.2                    # a job's default ip_adapter_weight
    ip_adapter_noise = 0.5                     # ... and ip_adapter_noise

    [presets.my-fast-stickers]                   # a few-step preset: LoRAs stacked
    base = "stabilityai/stable-diffusion-xl-base-1.0"
    lora = "/models/my-sticker-lora.safetensors" # weighted by the job's lora_scale
    loras = [                                    # more LoRAs, each at its own fixed weight
      { lora = "ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors", scale = 1.0 },
    ]
    scheduler = "Euler"
    scheduler_options = { timestep_spacing = "trailing" }  # also: eta, use_karras_sigmas, ...
    guidance_scale = 0                           # ≤ 1: no unconditional pass (half the UNet work)
    steps = 4

``lora`` (+ ``lora_weight_name``, ``lora_scale``) is the preset's main LoRA: a job's
``lora_scale`` sets its weight. Each ``loras`` entry is ``{ lora, weight_name, scale }``
(``weight_name`` as ``lora_weight_name``; ``scale`` default 1.0) and keeps its weight
whatever the job asks. All of them are loaded as named diffusers adapters and mixed with
``set_adapters(names, adapter_weights)`` (fused into the weights on a GPU).

``ip_adapter*`` let a job send a reference picture (stickers of a person or a pet):
diffusers' ``load_ip_adapter`` loads the "plus" weights (``ip_adapter_weights``: the
whole picture) and/or the "plus-face" ones (``ip_adapter_face_weights``: a face found in
the picture, cropped) with their image encoder, into the base's UNet, on the first job
that needs them (see :mod:`sticker_maker.engine.reference`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sticker_maker.errors import InvalidInput
from sticker_maker.schedulers import SCHEDULER_NAMES

SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
#: The IP-Adapter repository (Apache-2.0) and its SDXL ViT-H files
IP_ADAPTER_REPO = "h94/IP-Adapter"
IP_ADAPTER_PLUS = "ip-adapter-plus_sdxl_vit-h.safetensors"
IP_ADAPTER_PLUS_FACE = "ip-adapter-plus-face_sdxl_vit-h.safetensors"

#: Sampler options a preset may set (``scheduler_options``): name → (type, check, help).
#: They are passed to the diffusers scheduler's ``from_config`` (``eta`` to its ``step``)
#: when its class takes them, for whichever sampler a job picks.
SCHEDULER_OPTIONS: dict[str, tuple[type, Any, str]] = {
    "timestep_spacing": (
        str,
        lambda v: v in ("leading", "linspace", "trailing"),
        "leading, linspace or trailing",
    ),
    "eta": (float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "use_karras_sigmas": (bool, lambda v: True, "true or false"),
    "rescale_betas_zero_snr": (bool, lambda v: True, "true or false"),
    "steps_offset": (int, lambda v: 0 <= v <= 10, "an integer in [0, 10]"),
}


@dataclass(frozen=True)
class LoraRef:
    """One LoRA of a preset's stack: a local file or Hub repo (+ file), at a fixed weight."""

    lora: str
    weight_name: str | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class Preset:
    """One generation recipe. Every field can be set from TOML."""

    name: str
    base: str
    lora: str | None = None
    #: file inside a Hub LoRA repo (``lora = "owner/repo"``); ignored for local files
    lora_weight_name: str | None = None
    lora_scale: float = 1.0
    #: more LoRAs stacked on ``lora``, each at its own fixed weight (few-step LoRAs, ...)
    loras: tuple[LoraRef, ...] = ()
    #: sampler options (see :data:`SCHEDULER_OPTIONS`), e.g. {"timestep_spacing": "trailing"}
    scheduler_options: tuple[tuple[str, Any], ...] = ()
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
    #: IP-Adapter repo (Hub id or local folder) for jobs with a reference picture; None:
    #: this preset takes no picture
    ip_adapter: str | None = None
    #: folder of the weight files inside ``ip_adapter``
    ip_adapter_subfolder: str = "sdxl_models"
    #: "plus" weights: the whole picture (pets, objects, and faces when no face weights)
    ip_adapter_weights: str | None = None
    #: "plus-face" weights: the face found in the picture, cropped
    ip_adapter_face_weights: str | None = None
    #: the CLIP image encoder's folder inside ``ip_adapter`` (ViT-H for the SDXL vit-h files)
    ip_adapter_image_encoder: str = "models/image_encoder"
    #: a job's ``ip_adapter_weight`` and ``ip_adapter_noise`` when it sends none
    ip_adapter_weight: float = 0.5
    ip_adapter_noise: float = 0.0

    def reference_problem(self) -> str | None:
        """Why a job with a reference picture (``image``) cannot run with this preset
        (None when it can)."""
        if self.ip_adapter and (self.ip_adapter_weights or self.ip_adapter_face_weights):
            return None
        # what the person asking can do; how to configure one is the operator's (README)
        return (
            f"the style {self.name!r} cannot make stickers of a picture; send no image, or "
            "pick a style that can (face-to-sticker, sticker-maker)"
        )

    def ip_adapter_files(self) -> tuple[tuple[str, str], ...]:
        """The IP-Adapter weight files to load, as ``(kind, file)`` with kind "plus" or
        "plus-face", in the order they are loaded (empty: none configured)."""
        if not self.ip_adapter:
            return ()
        files = []
        if self.ip_adapter_weights:
            files.append(("plus", self.ip_adapter_weights))
        if self.ip_adapter_face_weights:
            files.append(("plus-face", self.ip_adapter_face_weights))
        return tuple(files)

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

    def lora_stack(self, lora_scale: float) -> list[LoraRef]:
        """The LoRAs in effect for a job at ``lora_scale``: the main one at that weight, then
        the stacked ones at theirs (weights 0 left out)."""
        stack = []
        if self.lora and lora_scale != 0:
            stack.append(LoraRef(self.lora, self.lora_weight_name, float(lora_scale)))
        stack.extend(ref for ref in self.loras if ref.scale != 0)
        return stack

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
        ip_adapter=IP_ADAPTER_REPO,
        ip_adapter_weights=IP_ADAPTER_PLUS,
        ip_adapter_weight=0.5,
    ),
    # fofr/face-to-sticker: a photo of a face in, a cel-shaded sticker of that person out.
    # The original adds InstantID (insightface's face model: non-commercial) and a depth
    # ControlNet; here the face is carried by IP-Adapter plus-face alone (README).
    Preset(
        name="face-to-sticker",
        base=SDXL_BASE,
        lora="artificialguybr/StickersRedmond",
        lora_weight_name="StickersRedmond.safetensors",
        lora_scale=1.0,
        prompt_template="Sticker, {prompt}, cel shaded, svg, vector art, sharp",
        negative_template="nsfw, nude, {negative_prompt}, photo, photography",
        scheduler="DPM++ 2M SDE Karras",
        guidance_scale=7.0,
        steps=20,
        aliases=("fofr/face-to-sticker",),
        upscaler="Kim2091/AnimeSharp/4x-AnimeSharp.pth",
        refiner="Lykon/dreamshaper-8",
        ip_adapter=IP_ADAPTER_REPO,
        ip_adapter_weights=IP_ADAPTER_PLUS,
        ip_adapter_face_weights=IP_ADAPTER_PLUS_FACE,
        ip_adapter_weight=0.2,
        ip_adapter_noise=0.5,
    ),
    # The sticker LoRA on SDXL-Lightning's 4-step LoRA (ByteDance/SDXL-Lightning, licence
    # CreativeML Open RAIL++-M like SDXL itself: commercial use allowed under its use
    # restrictions), sampled as its model card says: Euler, trailing timesteps, no guidance.
    Preset(
        name="sticker-maker-fast",
        base=SDXL_BASE,
        lora="artificialguybr/StickersRedmond",
        lora_weight_name="StickersRedmond.safetensors",
        lora_scale=1.0,
        loras=(LoraRef("ByteDance/SDXL-Lightning", "sdxl_lightning_4step_lora.safetensors", 1.0),),
        prompt_template="Sticker, {prompt}, svg, solid color background",
        negative_template="{negative_prompt}",
        scheduler="Euler",
        scheduler_options=(("timestep_spacing", "trailing"),),
        guidance_scale=0.0,
        steps=4,
        aliases=("fast", "fofr/sticker-maker-fast", "sticker-maker-4step"),
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
    if "loras" in values:
        values["loras"] = _lora_refs(values["loras"], where)
    if "scheduler_options" in values:
        values["scheduler_options"] = _scheduler_options(values["scheduler_options"], where)
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
    _check_ip_adapter_keys(preset, where)
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


_LORA_KEYS = ("lora", "weight_name", "scale")


def _lora_refs(raw: Any, where: str) -> tuple[LoraRef, ...]:
    """``loras = [{ lora = "...", weight_name = "...", scale = 1.0 }, ...]``, checked."""
    if not isinstance(raw, list):
        raise InvalidInput(f"{where} loras must be a list of tables {{ lora = ... }}", "presets")
    refs = []
    for n, entry in enumerate(raw):
        at = f"{where} loras[{n}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("lora"), str):
            raise InvalidInput(f'{at} must be a table with lora = "path or owner/repo"', "presets")
        unknown = sorted(set(entry) - set(_LORA_KEYS))
        if unknown:
            raise InvalidInput(
                f"{at} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_LORA_KEYS)}",
                "presets",
            )
        scale = entry.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not -4 <= scale <= 4:
            raise InvalidInput(f"{at} scale {scale!r} must be a number in [-4, 4]", "presets")
        name = entry.get("weight_name")
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"{at} weight_name must be a file name", "presets")
        refs.append(LoraRef(entry["lora"], name, float(scale)))
    return tuple(refs)


def _scheduler_options(raw: Any, where: str) -> tuple[tuple[str, Any], ...]:
    """``scheduler_options = { timestep_spacing = "trailing", eta = 0.0 }``, checked."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} scheduler_options must be a table", "presets")
    options = []
    for key, value in sorted(raw.items()):
        if key not in SCHEDULER_OPTIONS:
            raise InvalidInput(
                f"{where} scheduler_options has unknown key {key!r}; allowed: "
                + ", ".join(SCHEDULER_OPTIONS),
                "presets",
            )
        kind, ok, wanted = SCHEDULER_OPTIONS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise InvalidInput(f"{where} scheduler_options.{key} must be {wanted}", "presets")
        if not ok(value):
            raise InvalidInput(
                f"{where} scheduler_options.{key} {value!r} must be {wanted}", "presets"
            )
        options.append((key, value))
    return tuple(options)


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


def _check_ip_adapter_keys(preset: Preset, where: str) -> None:
    problems = []
    for key in ("ip_adapter_weight", "ip_adapter_noise"):
        value = getattr(preset, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            problems.append(f"{key} {value!r} must be a number in [0, 1]")
    names = ("ip_adapter_weights", "ip_adapter_face_weights")
    if preset.ip_adapter and not any(getattr(preset, k) for k in names):
        problems.append("ip_adapter needs ip_adapter_weights and/or ip_adapter_face_weights")
    for key in (*names, "ip_adapter", "ip_adapter_subfolder", "ip_adapter_image_encoder"):
        value = getattr(preset, key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string")
    if problems:
        raise InvalidInput(f"{where} " + "; ".join(problems), "presets")
