"""Builders of tiny random models saved in the real on-disk formats.

The test machines have no GPU and cannot download weights, so the engine tests build
tiny, randomly initialised models here, save them exactly as the real ones are laid
out on disk (diffusers pipeline folders, LoRA ``.safetensors`` files in diffusers and
kohya/civitai key layouts, ESRGAN ``.pth``/``.safetensors`` state dicts), and then load
them back through the production code paths.

Every builder is a pure function of its arguments: weights come from fixed seeds, so the
same call writes the same tensors every time. ``tests/conftest.py`` wraps them in
session-scoped fixtures. Heavy imports (torch, diffusers, transformers, peft) happen
inside the builders so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from transformers import CLIPTokenizer

__all__ = [
    "build_ip_adapter",
    "build_tiny_esrgan",
    "build_tiny_ip_adapter",
    "build_tiny_lora",
    "build_tiny_sd15_img2img",
    "build_tiny_sdxl",
    "build_tiny_sticker_sdxl",
    "diffusers_unet_module_to_kohya",
]

#: Hidden size of each tiny CLIP text encoder; SDXL's UNet sees both, concatenated.
_TEXT_HIDDEN = 32
#: Projection size of the second (pooled) text encoder.
_TEXT_PROJECTION = 32
#: Size of SDXL's ``addition_time_embed_dim`` in the tiny UNet.
_TIME_EMBED_DIM = 8

#: The attention projections a LoRA covers in the UNet and in the CLIP text encoders.
UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


# --------------------------------------------------------------------------- tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: each byte maps to one printable unicode character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


#: A handful of BPE merges (left, right); every merge result is added to the vocabulary.
_MERGES: tuple[tuple[str, str], ...] = (
    ("s", "t"),
    ("st", "i"),
    ("c", "k"),
    ("e", "r</w>"),
    ("sti", "ck"),
    ("stick", "er</w>"),
    ("c", "a"),
    ("ca", "t</w>"),
)
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _tiny_clip_vocab() -> dict[str, int]:
    """Special tokens, the 256 byte symbols with and without ``</w>``, then merge results."""
    vocab: dict[str, int] = {_BOS: 0, _EOS: 1}
    symbols = list(_bytes_to_unicode().values())
    for sym in symbols:
        vocab[sym] = len(vocab)
    for sym in symbols:
        vocab[sym + "</w>"] = len(vocab)
    for left, right in _MERGES:
        vocab.setdefault(left + right, len(vocab))
    return vocab


def _tiny_clip_tokenizer() -> CLIPTokenizer:
    """A real byte-level BPE ``CLIPTokenizer`` with a tiny vocabulary, built without the hub.

    Any text tokenizes (every byte has a symbol). transformers 5 wants the merges as
    tuples, not ``"a b"`` strings.
    """
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_tiny_clip_vocab(), merges=list(_MERGES), model_max_length=77)


def _write_hub_style_tokenizer(folder: Path) -> None:
    """Rewrite a saved CLIP tokenizer folder in the layout of the real SD/SDXL repos.

    transformers 5 ``save_pretrained`` writes only ``tokenizer.json``; the real
    ``stabilityai/stable-diffusion-xl-base-1.0`` and SD 1.5 repos ship ``vocab.json``,
    ``merges.txt``, ``special_tokens_map.json`` and ``tokenizer_config.json`` (no
    ``tokenizer.json``). Writing that layout makes the tests load tokenizers the way
    production loads real checkpoints.
    """
    for stale in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / stale).unlink(missing_ok=True)
    special = {"bos_token": _BOS, "eos_token": _EOS, "unk_token": _EOS, "pad_token": _EOS}
    files = {
        "vocab.json": _tiny_clip_vocab(),
        "special_tokens_map.json": special,
        "tokenizer_config.json": {
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": 77,
            "do_lower_case": True,
            "errors": "replace",
            "add_prefix_space": False,
            **special,
        },
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    merges = "".join(f"{left} {right}\n" for left, right in _MERGES)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")


def _write_legacy_clip_text_weights(folder: Path) -> None:
    """Re-save a ``CLIPTextModel`` folder with the ``text_model.``-prefixed keys of real repos.

    transformers 5's ``CLIPTextModel`` dropped the ``text_model`` wrapper module and saves
    ``encoder.layers...``; every real SD/SDXL ``text_encoder/model.safetensors`` has
    ``text_model.encoder.layers...`` (transformers 5 still loads those).
    """
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}
    save_file(state, str(path), metadata={"format": "pt"})


# --------------------------------------------------------------------------- components


def _tiny_text_encoder(tokenizer: CLIPTokenizer, *, with_projection: bool) -> Any:
    """A 3-layer CLIP text encoder sized for ``tokenizer`` (random weights, seeded by caller)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=3,
        num_attention_heads=4,
        projection_dim=_TEXT_PROJECTION,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(config).eval()


def _tiny_vae(scaling_factor: float) -> Any:
    """AutoencoderKL with four blocks, so the spatial factor is 8 as in SD/SDXL."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    ).eval()


def _sd_scheduler_config() -> dict[str, Any]:
    """The noise-schedule settings shared by SD 1.5 and SDXL checkpoints."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }


# --------------------------------------------------------------------------- SDXL


def build_tiny_sdxl(dest: Path) -> Path:
    """Save a tiny random ``StableDiffusionXLPipeline`` folder at ``dest`` and return it.

    The folder has the real layout (``model_index.json``, ``tokenizer``, ``tokenizer_2``,
    ``text_encoder``, ``text_encoder_2``, ``unet``, ``vae``, ``scheduler``) and loads with
    ``StableDiffusionXLPipeline.from_pretrained(dest)`` without network. The UNet's
    ``sample_size`` is 8 latents, so the default image size is 64x64. About 5 MB.
    """
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    dest = Path(dest)
    tokenizer = _tiny_clip_tokenizer()

    torch.manual_seed(0)
    text_encoder = _tiny_text_encoder(tokenizer, with_projection=False)
    torch.manual_seed(1)
    text_encoder_2 = _tiny_text_encoder(tokenizer, with_projection=True)
    torch.manual_seed(2)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=2 * _TEXT_HIDDEN,
        addition_embed_type="text_time",
        addition_time_embed_dim=_TIME_EMBED_DIM,
        # 6 micro-conditioning numbers (size, crop, target size) + pooled text embedding.
        projection_class_embeddings_input_dim=6 * _TIME_EMBED_DIM + _TEXT_PROJECTION,
        norm_num_groups=8,
    ).eval()
    torch.manual_seed(3)
    vae = _tiny_vae(scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(**_sd_scheduler_config())

    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.save_pretrained(dest)
    _write_hub_style_tokenizer(dest / "tokenizer")
    _write_hub_style_tokenizer(dest / "tokenizer_2")
    _write_legacy_clip_text_weights(dest / "text_encoder")
    return dest


# --------------------------------------------------------------------------- SD 1.5


def build_tiny_sd15_img2img(dest: Path) -> Path:
    """Save a tiny random ``StableDiffusionImg2ImgPipeline`` folder at ``dest`` and return it.

    One CLIP text encoder (hidden 32 = ``cross_attention_dim``), no safety checker
    (``requires_safety_checker=False``), a PNDM scheduler as in SD 1.5 checkpoints.
    Loads with ``StableDiffusionImg2ImgPipeline.from_pretrained(dest)``. About 4 MB.
    """
    import torch
    from diffusers import PNDMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel

    dest = Path(dest)
    tokenizer = _tiny_clip_tokenizer()
    torch.manual_seed(10)
    text_encoder = _tiny_text_encoder(tokenizer, with_projection=False)
    torch.manual_seed(11)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),
        cross_attention_dim=_TEXT_HIDDEN,
        norm_num_groups=8,
    ).eval()
    torch.manual_seed(12)
    vae = _tiny_vae(scaling_factor=0.18215)
    scheduler = PNDMScheduler(**_sd_scheduler_config(), skip_prk_steps=True, set_alpha_to_one=False)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(dest)
    _write_hub_style_tokenizer(dest / "tokenizer")
    _write_legacy_clip_text_weights(dest / "text_encoder")
    return dest


# --------------------------------------------------------------------------- LoRA

_UNET_ATTN_RE = re.compile(
    r"^(?P<kind>down_blocks|up_blocks)\.(?P<block>\d+)\.attentions\.(?P<layer>\d+)\.(?P<rest>.+)$"
)
_UNET_MID_ATTN_RE = re.compile(r"^mid_block\.attentions\.0\.(?P<rest>.+)$")


def diffusers_unet_module_to_kohya(module: str, layers_per_block: int) -> str:
    """Map a diffusers UNet attention module path to its kohya (original SD/sgm) LoRA name.

    The inverse of diffusers' ``_maybe_map_sgm_blocks_to_diffusers`` followed by
    ``_convert_unet_lora_key`` for attention modules. In the original UNet:

    - ``input_blocks.0`` is ``conv_in``; down block ``b`` layer ``l`` is
      ``input_blocks.{1 + b*(L+1) + l}`` (``L`` = layers_per_block; the extra slot per
      block holds the downsampler), with ``.0`` = resnet and ``.1`` = attention;
    - ``mid_block.attentions.0`` is ``middle_block.1``;
    - up block ``b`` layer ``l`` is ``output_blocks.{b*(L+1) + l}`` (up blocks have
      ``L+1`` layers), again ``.1`` = attention.

    Example (SDXL, L=2): ``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` ->
    ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``.
    """
    if m := _UNET_ATTN_RE.match(module):
        block, layer = int(m["block"]), int(m["layer"])
        if m["kind"] == "down_blocks":
            prefix = f"input_blocks.{1 + block * (layers_per_block + 1) + layer}.1"
        else:
            prefix = f"output_blocks.{block * (layers_per_block + 1) + layer}.1"
        rest = m["rest"]
    elif m := _UNET_MID_ATTN_RE.match(module):
        prefix, rest = "middle_block.1", m["rest"]
    else:
        raise ValueError(f"no kohya mapping for UNet module {module!r} (attentions only)")
    return "lora_unet_" + f"{prefix}.{rest}".replace(".", "_")


def _fill_lora_weights(model: torch.nn.Module, generator: torch.Generator, std: float) -> None:
    """Overwrite every LoRA A/B matrix of ``model`` with seeded normal values.

    peft's ``init_lora_weights=False`` already gives non-zero B, but from the global RNG
    and with ``nn.Linear``'s scale; drawing from our own generator pins the values and
    keeps the LoRA's effect moderate on the tiny model.
    """
    import torch

    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if ".lora_A." in name or ".lora_B." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def _peft_lora_tensors(model: torch.nn.Module, *, clip: bool) -> dict[str, tuple[Any, Any]]:
    """``{module_path: (down, up)}`` for each peft LoRA layer (default adapter) of ``model``.

    With ``clip=True`` module paths get the ``text_model.`` prefix that real LoRA files
    carry (transformers 5's ``CLIPTextModel`` has no ``text_model`` submodule any more,
    ``CLIPTextModelWithProjection`` still has; diffusers strips the prefix when needed).
    """
    from peft.utils import get_peft_model_state_dict

    sd = get_peft_model_state_dict(model, save_embedding_layers=False)
    out: dict[str, tuple[Any, Any]] = {}
    for key, down in sorted(sd.items()):
        if key.endswith(".lora_A.weight"):
            module = key.removesuffix(".lora_A.weight")
            up = sd[f"{module}.lora_B.weight"]
            if clip and not module.startswith("text_model."):
                module = f"text_model.{module}"
            out[module] = (down.detach().clone().contiguous(), up.detach().clone().contiguous())
    return out


def _lora_metadata(config: Any) -> dict[str, Any]:
    """peft ``LoraConfig`` as a JSON-safe dict, deterministic across processes and paths.

    ``save_lora_weights`` turns sets into lists in hash order (which changes with
    ``PYTHONHASHSEED``), and ``base_model_name_or_path`` would embed the tmp path.
    """
    meta = config.to_dict()
    for key, value in meta.items():
        if isinstance(value, set):
            meta[key] = sorted(value)
    meta["base_model_name_or_path"] = None
    return meta


def _sort_safetensors_metadata(path: Path) -> None:
    """Rewrite a ``.safetensors`` header with its ``__metadata__`` keys sorted.

    safetensors keeps metadata in a Rust ``HashMap``, so its order in the header (and thus
    the file's bytes) changes from run to run. The tensor data is left untouched: only the
    JSON header is re-serialised (padded with spaces to a multiple of 8, as the format
    allows).
    """
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(header)
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def build_tiny_lora(
    base: Path,
    dest: Path,
    *,
    layout: Literal["diffusers", "kohya"],
    seed: int = 0,
    rank: int = 4,
) -> Path:
    """Write a LoRA ``.safetensors`` file for the tiny SDXL at ``base`` to ``dest``; return it.

    The LoRA covers the UNet attention projections (``to_q``, ``to_k``, ``to_v``,
    ``to_out.0``) and both text encoders (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``), rank ``rank``, ``lora_alpha = 2 * rank``, with non-zero seeded weights
    so it visibly changes the output. The same ``seed`` gives the same weights in both
    layouts:

    - ``"diffusers"``: what ``StableDiffusionXLPipeline.save_lora_weights`` writes
      (``unet.down_blocks.1...to_q.lora.down.weight``, ``text_encoder.text_model.encoder
      .layers.0.self_attn.q_proj.lora_linear_layer.down.weight``, ``text_encoder_2...``),
      with the peft adapter metadata so ``lora_alpha`` survives loading;
    - ``"kohya"``: kohya-ss/civitai keys (``lora_unet_input_blocks_3_1_transformer_blocks
      _0_attn1_to_q.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``,
      ``lora_te1_text_model_encoder_layers_0_self_attn_q_proj...``, ``lora_te2_...``), the
      format most sticker LoRAs ship in.
    """
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if layout not in ("diffusers", "kohya"):
        raise ValueError(f"unknown LoRA layout {layout!r}")
    base, dest = Path(base), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    alpha = 2 * rank

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(base, subfolder="text_encoder_2")

    unet_config = LoraConfig(
        r=rank, lora_alpha=alpha, init_lora_weights=False, target_modules=list(UNET_LORA_TARGETS)
    )
    te_config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights=False,
        target_modules=list(TEXT_ENCODER_LORA_TARGETS),
    )
    generator = torch.Generator().manual_seed(seed)
    for model, config in (
        (unet, unet_config),
        (text_encoder, te_config),
        (text_encoder_2, te_config),
    ):
        model.add_adapter(config)
        _fill_lora_weights(model, generator, std=0.1)

    unet_t = _peft_lora_tensors(unet, clip=False)
    te1_t = _peft_lora_tensors(text_encoder, clip=True)
    te2_t = _peft_lora_tensors(text_encoder_2, clip=True)

    if layout == "diffusers":

        def layers(tensors: dict[str, tuple[Any, Any]]) -> dict[str, torch.Tensor]:
            # peft names -> diffusers names, as the diffusers training scripts do.
            peft_sd: dict[str, torch.Tensor] = {}
            for module, (down, up) in tensors.items():
                peft_sd[f"{module}.lora_A.weight"] = down
                peft_sd[f"{module}.lora_B.weight"] = up
            return convert_state_dict_to_diffusers(peft_sd)

        StableDiffusionXLPipeline.save_lora_weights(
            save_directory=dest.parent,
            weight_name=dest.name,
            unet_lora_layers=layers(unet_t),
            text_encoder_lora_layers=layers(te1_t),
            text_encoder_2_lora_layers=layers(te2_t),
            unet_lora_adapter_metadata=_lora_metadata(unet_config),
            text_encoder_lora_adapter_metadata=_lora_metadata(te_config),
            text_encoder_2_lora_adapter_metadata=_lora_metadata(te_config),
            safe_serialization=True,
        )
        _sort_safetensors_metadata(dest)
        return dest

    layers_per_block = unet.config.layers_per_block
    if not isinstance(layers_per_block, int):
        raise ValueError("kohya mapping needs an int layers_per_block")
    names: dict[str, tuple[Any, Any]] = {}
    for module, pair in unet_t.items():
        names[diffusers_unet_module_to_kohya(module, layers_per_block)] = pair
    for prefix, tensors in (("lora_te1_", te1_t), ("lora_te2_", te2_t)):
        for module, pair in tensors.items():
            names[prefix + module.replace(".", "_")] = pair
    state: dict[str, torch.Tensor] = {}
    for name, (down, up) in names.items():
        state[f"{name}.lora_down.weight"] = down
        state[f"{name}.lora_up.weight"] = up
        state[f"{name}.alpha"] = torch.tensor(float(alpha))
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "sdxl_base_v1-0",
    }
    save_file(state, str(dest), metadata=metadata)
    _sort_safetensors_metadata(dest)
    return dest


# --------------------------------------------------------------------------- ESRGAN


def build_tiny_esrgan(
    dest: Path,
    *,
    scale: int = 4,
    fmt: Literal["pth", "safetensors"] = "pth",
) -> Path:
    """Write a tiny random ESRGAN (RRDBNet) at ``dest``; return it.

    Keys follow the original/Real-ESRGAN layout (``conv_first``, ``body.0.rdb{1,2,3}.conv
    {1..5}``, ``conv_body``, ``conv_up1``..``conv_up{log2 scale}``, ``conv_hr``,
    ``conv_last``) with num_feat 16, one RRDB block and grow channels 32 (what spandrel
    assumes). ``fmt="pth"`` saves ``{"params_ema": state_dict}`` with ``torch.save``;
    ``fmt="safetensors"`` saves the bare state dict. ``scale`` is 2, 4 or 8.
    """
    import torch

    if scale not in (2, 4, 8):
        raise ValueError(f"scale must be 2, 4 or 8, not {scale}")
    if fmt not in ("pth", "safetensors"):
        raise ValueError(f"unknown format {fmt!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nf, gc, ch = 16, 32, 3
    generator = torch.Generator().manual_seed(1234 + scale)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out_c: int, in_c: int, gain: float = 1.0) -> None:
        # He-style init, damped: ESRGAN uses 0.1-scaled init inside the residual trunk.
        std = gain * (2.0 / (in_c * 9)) ** 0.5
        state[f"{name}.weight"] = torch.randn(out_c, in_c, 3, 3, generator=generator) * std
        state[f"{name}.bias"] = torch.randn(out_c, generator=generator) * 0.01

    conv("conv_first", nf, ch)
    for rdb in (1, 2, 3):
        for i in range(1, 5):
            conv(f"body.0.rdb{rdb}.conv{i}", gc, nf + (i - 1) * gc, gain=0.1)
        conv(f"body.0.rdb{rdb}.conv5", nf, nf + 4 * gc, gain=0.1)
    conv("conv_body", nf, nf, gain=0.1)
    for i in range(1, scale.bit_length()):
        conv(f"conv_up{i}", nf, nf)
    conv("conv_hr", nf, nf)
    conv("conv_last", ch, nf, gain=0.2)
    # Centre the output on mid-grey so little of it is clipped to [0, 1] by spandrel.
    state["conv_last.bias"] += 0.5

    if fmt == "pth":
        torch.save({"params_ema": state}, dest)
    else:
        from safetensors.torch import save_file

        save_file(state, str(dest))
    return dest


def _sticker_target(size: int = 64) -> torch.Tensor:
    """What the trained decoder draws: an orange face with a dark outline on white, in [-1, 1]."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    s = size / 64
    draw.ellipse(
        (14 * s, 12 * s, 50 * s, 52 * s),
        fill=(235, 120, 40),
        outline=(40, 30, 30),
        width=max(1, round(3 * s)),
    )
    for x in (24, 36):
        draw.ellipse((x * s, 24 * s, (x + 6) * s, 30 * s), fill=(40, 30, 30))
    array = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()
    return array / 127.5 - 1


def build_tiny_sticker_sdxl(dest: Path, *, train_steps: int = 400) -> Path:
    """A tiny SDXL whose VAE decoder is trained to draw a sticker on a flat white background.

    The random tiny model draws texture with no subject, so a cut-out of its output is
    (correctly) all background. End-to-end tests need a real subject: this builder trains the
    decoder (a few hundred Adam steps on CPU, deterministic) to map any latent of the size the
    pipeline produces at 64x64 onto a face sticker, with seed-dependent variation, and saves it
    back into the diffusers folder. Everything else is :func:`build_tiny_sdxl`'s.
    """
    import torch
    from diffusers import AutoencoderKL

    build_tiny_sdxl(dest)
    vae = AutoencoderKL.from_pretrained(dest / "vae")
    target = _sticker_target(64)
    generator = torch.Generator().manual_seed(0)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    optimiser = torch.optim.Adam(params, lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(train_steps):
            # Decoder inputs the pipeline produces: latents / scaling_factor, std ≈ 35 here.
            latents = torch.randn(4, 4, 8, 8, generator=generator) * 35
            loss = ((vae.decode(latents).sample - target) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    vae.save_pretrained(dest / "vae")
    return dest


def build_tiny_taesd(path: Path) -> Path:
    """A tiny random ``AutoencoderTiny`` (TAESD's layout: 4 latent channels, 8x upsampling,
    scaling factor 1 as madebyollin/taesdxl ships it), saved as a diffusers folder."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
        scaling_factor=1.0,
    )
    vae.save_pretrained(path)
    return path


# --------------------------------------------------------------------------- IP-Adapter

#: the tiny IP-Adapters' files, named as in h94/IP-Adapter's ``sdxl_models`` folder
IP_ADAPTER_PLUS_FILE = "ip-adapter-plus_sdxl_vit-h.safetensors"
IP_ADAPTER_PLUS_FACE_FILE = "ip-adapter-plus-face_sdxl_vit-h.safetensors"
#: the tiny CLIP image encoder's hidden size (ViT-H: 1280) and tokens per picture
_IMAGE_HIDDEN = 32
_RESAMPLER_DIM = 64  # the Resampler's width: one head of 64 (ViT-H plus: 1280, 20 heads)
_RESAMPLER_QUERIES = 4  # image tokens per picture (plus: 16)


def build_tiny_ip_adapter(sdxl: Path, dest: Path) -> Path:
    """Save a tiny IP-Adapter repository at ``dest`` in h94/IP-Adapter's layout and return it.

    ``models/image_encoder`` is a ``CLIPVisionModelWithProjection`` folder (32 px pictures,
    hidden 32, 2 layers: the penultimate hidden states feed the adapters);
    ``sdxl_models`` holds a "plus" and a "plus-face" file (see :func:`build_ip_adapter`)
    for ``sdxl``'s UNet. The two files differ only in their random weights.
    """
    from diffusers import UNet2DConditionModel

    return build_ip_adapter(
        dict(UNet2DConditionModel.load_config(Path(sdxl) / "unet")),
        dest,
        encoder={
            "hidden_size": _IMAGE_HIDDEN,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": _IMAGE_HIDDEN,
        },
        dim=_RESAMPLER_DIM,
        heads=1,
        queries=_RESAMPLER_QUERIES,
    )


def build_ip_adapter(
    unet_config: dict[str, Any],
    dest: Path,
    *,
    encoder: dict[str, Any],
    dim: int,
    heads: int,
    queries: int,
    dtype: str = "float32",
    files: tuple[str, ...] = (IP_ADAPTER_PLUS_FILE, IP_ADAPTER_PLUS_FACE_FILE),
) -> Path:
    """An IP-Adapter "plus" repository with random weights, in h94/IP-Adapter's layout.

    ``models/image_encoder``: a ``CLIPVisionModelWithProjection`` of config ``encoder``
    (ViT-H/14 for the real SDXL vit-h files). ``sdxl_models/<file>``: ``image_proj.*``
    (the Perceiver Resampler in the original key layout: ``latents`` (1, ``queries``,
    ``dim``), ``proj_in``, ``proj_out`` (to the UNet's cross-attention width),
    ``norm_out``, four ``layers.N.0`` attention blocks of ``heads`` x 64 and four
    ``layers.N.1`` feed-forward blocks) and ``ip_adapter.K.to_k_ip/to_v_ip`` for each
    cross-attention layer of a UNet of ``unet_config`` (K = 1, 3, 5, ... in processor
    order), as diffusers' ``load_ip_adapter`` reads them.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    dest = Path(dest)
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(10)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**encoder)).eval()
    model.to(torch_dtype).save_pretrained(dest / "models" / "image_encoder")
    del model
    config = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    cross = [name for name in unet.attn_processors if "attn2" in name]
    channels = list(unet.config.block_out_channels)
    out_dim = unet.config.cross_attention_dim
    image_dim = encoder["hidden_size"]

    def hidden_size(name: str) -> int:
        if name.startswith("mid_block"):
            return channels[-1]
        block = int(name.split(".")[1])
        return (channels[::-1] if name.startswith("up_blocks") else channels)[block]

    for seed, name in enumerate(files, start=11):
        g = torch.Generator().manual_seed(seed)

        def rand(*shape: int, std: float = 0.2, g: torch.Generator = g) -> torch.Tensor:
            scale = std / max(1.0, (shape[-1] / 64) ** 0.5)  # keep wide layers tame
            return (torch.randn(*shape, generator=g) * scale).to(torch_dtype).contiguous()

        def ones(n: int) -> torch.Tensor:
            return torch.ones(n, dtype=torch_dtype)

        def zeros(n: int) -> torch.Tensor:
            return torch.zeros(n, dtype=torch_dtype)

        inner = heads * 64
        tensors = {
            "image_proj.latents": rand(1, queries, dim, std=1.0),
            "image_proj.proj_in.weight": rand(dim, image_dim),
            "image_proj.proj_in.bias": rand(dim),
            "image_proj.proj_out.weight": rand(out_dim, dim),
            "image_proj.proj_out.bias": rand(out_dim),
            "image_proj.norm_out.weight": ones(out_dim),
            "image_proj.norm_out.bias": zeros(out_dim),
        }
        for layer in range(4):  # diffusers' IPAdapterPlusImageProjection has depth 4
            at = f"image_proj.layers.{layer}"
            tensors |= {
                f"{at}.0.norm1.weight": ones(dim),
                f"{at}.0.norm1.bias": zeros(dim),
                f"{at}.0.norm2.weight": ones(dim),
                f"{at}.0.norm2.bias": zeros(dim),
                f"{at}.0.to_q.weight": rand(inner, dim),
                f"{at}.0.to_kv.weight": rand(2 * inner, dim),
                f"{at}.0.to_out.weight": rand(dim, inner),
                f"{at}.1.0.weight": ones(dim),
                f"{at}.1.0.bias": zeros(dim),
                f"{at}.1.1.weight": rand(4 * dim, dim),
                f"{at}.1.3.weight": rand(dim, 4 * dim),
            }
        for n, proc_name in enumerate(cross):
            key = 1 + 2 * n
            size = hidden_size(proc_name)
            tensors[f"ip_adapter.{key}.to_k_ip.weight"] = rand(size, out_dim)
            tensors[f"ip_adapter.{key}.to_v_ip.weight"] = rand(size, out_dim, std=0.5)
        (dest / "sdxl_models").mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(dest / "sdxl_models" / name))
    return dest
