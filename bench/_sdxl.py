"""The real SDXL architecture with random weights, saved in the real on-disk formats.

Speed depends on the architecture and the shapes, not on the weights' values, so SDXL built
from its published configuration (``bench/configs/sdxl-base-1.0.json``, copied from
``stabilityai/stable-diffusion-xl-base-1.0``) with random weights is timed exactly like the
real model. :func:`build` writes a diffusers folder (``model_index.json``, both tokenizers
with 49,408 entries, both CLIP text encoders, the UNet and the VAE, float16 safetensors),
:func:`build_kohya_lora` a sticker LoRA in kohya layout on every layer a StickersRedmond-style
LoRA touches. Both are cached under ``.cache/fullsize/<config hash>/``: reruns skip the build.

Building is cheap on 2 cores and small in memory: models are made on PyTorch's meta device
(shapes and names only, no memory), and each tensor is written straight into its
``.safetensors`` file, one at a time, filled from one pool of random float16 values at a
random offset. ``safetensors.torch.save_file`` was not used: it needs the whole state dict in
memory (10 GiB for the float16 UNet, plus a bytes copy of each tensor); the format is a
length, a JSON header and the raw tensors, so writing it tensor by tensor is a few lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "bench" / "configs" / "sdxl-base-1.0.json"
CACHE = Path(os.environ.get("STICKER_MAKER_BENCH_CACHE", REPO / ".cache" / "bench")) / "fullsize"

#: what a StickersRedmond-style LoRA covers: every transformer block's attention and
#: feed-forward Linears in the UNet, attention and MLP Linears of both text encoders
UNET_LORA_SUFFIXES = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
)
TEXT_LORA_SUFFIXES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
TEXT_LORA_SUFFIXES += ("self_attn.out_proj", "mlp.fc1", "mlp.fc2")
#: values in the pool of random numbers each tensor is filled from
_POOL = 1 << 24
_DTYPE_NAMES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def config_hash(config: dict[str, Any], *extra: Any) -> str:
    text = json.dumps([config, *extra], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- models


def meta_models(config: dict[str, Any]) -> dict[str, Any]:
    """Every model of the pipeline on the meta device (no memory, no values)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        return {
            "unet": UNet2DConditionModel.from_config(config["unet"]),
            "vae": AutoencoderKL.from_config(config["vae"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**config["text_encoder"])),
            "text_encoder_2": CLIPTextModelWithProjection(
                CLIPTextConfig(**config["text_encoder_2"])
            ),
        }


def count_params(models: dict[str, Any]) -> dict[str, int]:
    return {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}


def check_params(config: dict[str, Any], counts: dict[str, int]) -> None:
    """Raise when a model's parameter count differs from the published one."""
    expected = config.get("expected_params", {})
    wrong = {k: (counts[k], v) for k, v in expected.items() if counts.get(k) != v}
    if wrong:
        raise ValueError(f"parameter counts (built, published) differ: {wrong}")


class _Filler:
    """Random float16 values, cheaply: slices of one seeded pool at random offsets, scaled."""

    def __init__(self, seed: int, dtype: Any, size: int = _POOL) -> None:
        import torch

        self.generator = torch.Generator().manual_seed(seed)
        self.size = max(1, min(size, _POOL))
        self.pool = torch.randn(self.size, generator=self.generator).to(dtype)
        self.dtype = dtype

    def normal(self, shape: tuple[int, ...], std: float) -> Any:
        import torch

        n = 1
        for d in shape:
            n *= d
        start = int(torch.randint(0, self.size, (1,), generator=self.generator))
        pieces, left, at = [], n, start
        while left:
            take = min(left, self.size - at)
            pieces.append(self.pool[at : at + take])
            left -= take
            at = 0
        flat = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return (flat * std).reshape(shape)

    def constant(self, shape: tuple[int, ...], value: float) -> Any:
        import torch

        return torch.full(shape, value, dtype=self.dtype)


def _init_tensors(model: Any, filler: _Filler, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(key, tensor)`` for each entry of ``model``'s state dict, initialised by the kind of
    layer it belongs to: Linear/Conv weights ~ N(0, 1/fan_in), embeddings ~ N(0, 0.02²),
    norms' weights 1, biases 0 (activations keep their scale through the deep stacks)."""
    import torch

    owners = {}
    for mod_name, module in model.named_modules():
        for p_name, _ in module.named_parameters(recurse=False):
            owners[f"{mod_name}.{p_name}" if mod_name else p_name] = module
    for key, meta in model.state_dict().items():
        shape = tuple(meta.shape)
        module = owners.get(key)
        last = key.rsplit(".", 1)[-1]
        if module is None or not meta.is_floating_point():
            tensor = torch.zeros(shape, dtype=filler.dtype)
        elif isinstance(module, torch.nn.Embedding):
            tensor = filler.normal(shape, 0.02)
        elif last == "bias":
            tensor = filler.constant(shape, 0.0)
        elif isinstance(module, torch.nn.LayerNorm | torch.nn.GroupNorm) or len(shape) == 1:
            tensor = filler.constant(shape, 1.0)
        else:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            tensor = filler.normal(shape, fan_in**-0.5)
        yield prefix + key, tensor


def write_safetensors(
    path: Path, entries: list[tuple[str, tuple[int, ...], str]], tensors: Iterator[Any]
) -> None:
    """Write a ``.safetensors`` file tensor by tensor (``entries``: name, shape, dtype name
    in the order ``tensors`` yields them)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    sizes = {"F16": 2, "BF16": 2, "F32": 4}
    for name, shape, dtype in entries:
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for tensor in tensors:
            data = tensor.contiguous().view(-1).view(dtype=_uint_of(tensor)).numpy()
            out.write(memoryview(data))
            written += data.nbytes
    if written != offset:
        raise RuntimeError(f"{path}: wrote {written} bytes of tensors, expected {offset}")


def _uint_of(tensor: Any) -> Any:
    import torch

    return {2: torch.int16, 4: torch.int32}[tensor.element_size()]


def _save_model(model: Any, dest: Path, filename: str, filler: _Filler, prefix: str = "") -> None:
    import torch

    dtype = _DTYPE_NAMES[str(filler.dtype).removeprefix("torch.")]
    entries = [
        (prefix + k, tuple(v.shape), dtype if v.is_floating_point() else "F32")
        for k, v in model.state_dict().items()
    ]
    if any(e[2] == "F32" for e in entries):  # non-float buffers: none in SDXL's models
        raise ValueError(f"{dest}: non-float entries in the state dict")
    with torch.no_grad():
        write_safetensors(dest / filename, entries, (t for _, t in _init_tensors(model, filler)))


# --------------------------------------------------------------------------- tokenizers


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: each byte maps to one printable unicode character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(printable, codes, strict=True))]


def clip_vocab(size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary of ``size`` entries laid out like CLIP's: the 256 byte
    symbols, the same with ``</w>``, merge results, then ``<|startoftext|>`` and
    ``<|endoftext|>`` last (so the end token has the highest id, as SDXL's pooling expects).
    The merges join two byte symbols (the real merges' text is not needed for timing)."""
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for sym in symbols:
        vocab[sym] = len(vocab)
    for sym in symbols:
        vocab[sym + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    wanted = size - 2 - len(vocab)
    for left in symbols:
        for right in symbols:
            if len(merges) == wanted:
                break
            merges.append((left, right))
            vocab[left + right] = len(vocab)
    if len(merges) != wanted:
        raise ValueError(f"a vocabulary of {size} needs more merges than two bytes give")
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def write_tokenizer(folder: Path, size: int, pad_token: str, max_length: int = 77) -> None:
    """A ``CLIPTokenizer`` folder in the hub layout (vocab.json, merges.txt, configs)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab(size)
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special,
    }
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# --------------------------------------------------------------------------- the folder


def build(config: dict[str, Any], dest: Path, *, seed: int = 0) -> dict[str, int]:
    """Write the random SDXL diffusers folder at ``dest`` (float16 safetensors); return the
    models' parameter counts (checked against the published ones first)."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig

    models = meta_models(config)
    counts = count_params(models)
    check_params(config, counts)
    dest.mkdir(parents=True, exist_ok=True)
    largest = max(p.numel() for m in models.values() for p in m.parameters())
    filler = _Filler(seed, torch.float16, largest)
    for name in ("unet", "vae"):
        models[name].save_config(dest / name)
        _save_model(models[name], dest / name, "diffusion_pytorch_model.safetensors", filler)
    for name in ("text_encoder", "text_encoder_2"):
        folder = dest / name
        text_config = CLIPTextConfig(**config[name])
        text_config.dtype = "float16"
        text_config.save_pretrained(folder)
        # The real repo's CLIPTextModel keys carry the ``text_model.`` prefix that
        # transformers 5 no longer has in the module tree (it still loads them).
        keys = models[name].state_dict()
        prefix = "" if next(iter(keys)).startswith("text_model.") else "text_model."
        _save_model(models[name], folder, "model.safetensors", filler, prefix)
    size = int(config["vocab_size"])
    write_tokenizer(dest / "tokenizer", size, config["tokenizer"]["pad_token"])
    write_tokenizer(dest / "tokenizer_2", size, config["tokenizer_2"]["pad_token"])
    scheduler = dict(config["scheduler"])
    scheduler["_diffusers_version"] = diffusers.__version__
    (dest / "scheduler").mkdir(exist_ok=True)
    (dest / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    index = {
        **config["model_index"],
        "_diffusers_version": diffusers.__version__,
        "add_watermarker": None,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "scheduler": ["diffusers", config["scheduler"]["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (dest / "model_index.json").write_text(json.dumps(index, indent=2))
    return counts


# --------------------------------------------------------------------------- the LoRA


def lora_targets(models: dict[str, Any]) -> dict[str, list[tuple[str, int, int]]]:
    """``{"unet"|"te1"|"te2": [(module path, in, out)]}``: the Linears a sticker LoRA covers."""
    import torch

    found: dict[str, list[tuple[str, int, int]]] = {"unet": [], "te1": [], "te2": []}
    for key, model_name, suffixes in (
        ("unet", "unet", UNET_LORA_SUFFIXES),
        ("te1", "text_encoder", TEXT_LORA_SUFFIXES),
        ("te2", "text_encoder_2", TEXT_LORA_SUFFIXES),
    ):
        for path, module in models[model_name].named_modules():
            if isinstance(module, torch.nn.Linear) and path.endswith(suffixes):
                if key == "unet" and ".transformer_blocks." not in path:
                    continue
                found[key].append((path, module.in_features, module.out_features))
    return found


def kohya_name(component: str, path: str, layers_per_block: int) -> str:
    """The kohya (original SD/sgm) name of a module: ``lora_unet_input_blocks_4_1_...``,
    ``lora_te1_text_model_encoder_layers_0_self_attn_q_proj``, ``lora_te2_...``."""
    if component == "unet":
        import sys

        sys.path.insert(0, str(REPO / "tests"))
        from tiny_models import diffusers_unet_module_to_kohya  # type: ignore[import-not-found]

        return diffusers_unet_module_to_kohya(path, layers_per_block)
    if not path.startswith("text_model."):
        path = f"text_model.{path}"
    return f"lora_{component}_" + path.replace(".", "_")


def build_kohya_lora(
    config: dict[str, Any], dest: Path, *, rank: int = 64, seed: int = 1
) -> dict[str, int]:
    """Write a random kohya-layout LoRA (``.lora_down.weight``, ``.lora_up.weight``,
    ``.alpha``; float16) of ``rank`` for the models of ``config``; return the layer count of
    each part (``unet``, ``te1``, ``te2``) and ``params``."""
    import torch

    models = meta_models(config)
    targets = lora_targets(models)
    layers_per_block = int(config["unet"]["layers_per_block"])
    largest = max(rank * max(i, o) for layers in targets.values() for _, i, o in layers)
    filler = _Filler(seed, torch.float16, largest)
    entries: list[tuple[str, tuple[int, ...], str]] = []
    plan: list[tuple[tuple[int, ...], float]] = []
    params = 0
    for component, layers in targets.items():
        for path, fan_in, fan_out in layers:
            name = kohya_name(component, path, layers_per_block)
            # down ~ N(0, 1/in), up small: the LoRA changes each layer's output by a few %
            entries.append((f"{name}.alpha", (), "F16"))
            plan.append(((), float(rank)))
            entries.append((f"{name}.lora_down.weight", (rank, fan_in), "F16"))
            plan.append(((rank, fan_in), fan_in**-0.5))
            entries.append((f"{name}.lora_up.weight", (fan_out, rank), "F16"))
            plan.append(((fan_out, rank), 0.05 * rank**-0.5))
            params += rank * (fan_in + fan_out)

    def tensors() -> Iterator[Any]:
        for (shape, value), (name, _, _) in zip(plan, entries, strict=True):
            if name.endswith(".alpha"):
                yield filler.constant(shape, value)
            else:
                yield filler.normal(shape, value)

    write_safetensors(dest, entries, tensors())
    _add_kohya_metadata(dest, rank)
    return {**{k: len(v) for k, v in targets.items()}, "params": params}


def _add_kohya_metadata(path: Path, rank: int) -> None:
    """kohya's training metadata in the header (what sd-scripts writes; tools read it)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = {
        "format": "pt",
        "ss_base_model_version": "sdxl_base_v1-0",
        "ss_network_alpha": str(rank),
        "ss_network_dim": str(rank),
        "ss_network_module": "networks.lora",
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


# --------------------------------------------------------------------------- cached


def ensure_built(
    config_path: Path = CONFIG, *, rank: int = 64, cache: Path = CACHE
) -> dict[str, Any]:
    """The folder and LoRA for ``config_path`` (built once, then reused; a ``done.json``
    marks a finished build). Returns ``base``, ``lora``, ``counts``, ``lora_layers``,
    ``build_seconds`` (0 when cached) and ``cached``."""
    config = load_config(config_path)
    root = cache / config_hash(config, rank, 1)
    marker = root / "done.json"
    if marker.is_file():
        return {**json.loads(marker.read_text()), "build_seconds": 0.0, "cached": True}
    started = time.perf_counter()
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    counts = build(config, root / "sdxl")
    lora = build_kohya_lora(config, root / "sticker-lora-kohya.safetensors", rank=rank)
    info = {
        "base": str(root / "sdxl"),
        "lora": str(root / "sticker-lora-kohya.safetensors"),
        "counts": counts,
        "lora_layers": lora,
        "lora_rank": rank,
        "config": str(config_path),
    }
    marker.write_text(json.dumps(info, indent=2))
    return {**info, "build_seconds": time.perf_counter() - started, "cached": False}
