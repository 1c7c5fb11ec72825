"""Reference pictures: stickers of the subject of a photo, through diffusers' IP-Adapter.

A preset's IP-Adapter files ("plus": the whole picture; "plus-face": a cropped face) are
loaded together by ``pipe.load_ip_adapter`` into the base's UNet, with their CLIP image
encoder, on the first job with a picture (:func:`load`); they stay loaded with the base.

Every job with a picture is a lane of the denoising loop like any other, with its own
image embeddings (:class:`LaneReference`). Once an IP-Adapter is in the UNet every UNet
call needs image embeddings, for every sample: each lane's weight goes in per sample, as
diffusers' IP-Adapter attention processors take it, through ``ip_adapter_masks``
(a constant mask per sample is a per-sample weight); a lane without a picture, or an
adapter a lane does not use, weighs 0 (``h + 0 * ip`` is ``h`` exactly: its pixels are
those of the same job on a base without the adapter). An adapter no lane of a step uses
gets scale 0, which the processors skip (no extra work). So reference and prompt-only
jobs, faces and pets, different weights, all share one UNet call.

``ip_adapter_noise`` (face-to-sticker's input, from ComfyUI's IPAdapter node): the
*negative* image embedding is not that of a black picture but of the picture shuffled
(flipped both ways, warped by a smooth random field whose size grows with the noise)
and sprinkled with noise (its amount shrinking with it), drawn from the job's seed.
Guidance then pushes away from "this picture's colours and textures without its
layout": a looser, more stylised likeness. 0 is diffusers' default (black picture).

img2img (``strength``): the lane starts from the picture (covering the sticker's size,
centre-cropped), encoded by the VAE, noised to the first of its timesteps, and runs the
last ``strength`` of them, as diffusers' img2img pipeline does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from sticker_maker.engine import faces
from sticker_maker.errors import InvalidInput, ModelUnavailable
from sticker_maker.presets import Preset

LogFn = Callable[[str], None]


@dataclass(frozen=True)
class AdapterSpec:
    """What ``load_ip_adapter`` loads for a preset (equal specs: loaded once per base)."""

    source: str
    subfolder: str
    kinds: tuple[str, ...]
    files: tuple[str, ...]
    image_encoder: str

    @classmethod
    def of(cls, preset: Preset) -> AdapterSpec | None:
        files = preset.ip_adapter_files()
        if not files or not preset.ip_adapter:
            return None
        return cls(
            preset.ip_adapter,
            preset.ip_adapter_subfolder,
            tuple(kind for kind, _ in files),
            tuple(name for _, name in files),
            preset.ip_adapter_image_encoder,
        )


def load(pipe: Any, spec: AdapterSpec, preset: str) -> None:
    """Load ``spec``'s IP-Adapter files (and image encoder) into ``pipe`` (replacing
    another spec's, if any)."""
    from sticker_maker.engine.loading import _hint, is_out_of_memory

    try:
        with torch.inference_mode(False):  # real parameters, even when a loop is running
            if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
                pipe.unload_ip_adapter()
            pipe.load_ip_adapter(
                spec.source,
                subfolder=spec.subfolder,
                weight_name=list(spec.files),
                image_encoder_folder=spec.image_encoder,
            )
            for module in (pipe.unet, pipe.image_encoder):
                module.requires_grad_(False)
    except Exception as exc:
        with contextlib.suppress(Exception), torch.inference_mode(False):
            pipe.unload_ip_adapter()  # nothing half-loaded stays in the UNet
        if is_out_of_memory(exc):
            raise
        ref = f"{spec.source}/{spec.subfolder}/{'+'.join(spec.files)}"
        raise ModelUnavailable(_hint("IP-Adapter", ref, preset, "ip_adapter", exc)) from exc
    set_scales(pipe, (0.0,) * len(spec.kinds))


def adapters(pipe: Any) -> int:
    """How many IP-Adapters are loaded into ``pipe``'s UNet (0: none)."""
    proj = getattr(pipe.unet, "encoder_hid_proj", None)
    return len(getattr(proj, "image_projection_layers", ())) if proj is not None else 0


def set_scales(pipe: Any, scales: Sequence[float]) -> None:
    """Each adapter's scale in every IP attention processor (0: skipped)."""
    for processor in pipe.unet.attn_processors.values():
        scale = getattr(processor, "scale", None)
        if isinstance(scale, list) and len(scale) == len(scales):
            scale[:] = list(scales)


@dataclass
class LaneReference:
    """A lane's picture, ready: which adapter, its weight, its embeddings (cond and
    negative, ``(1, 1, tokens, dim)``) and, for img2img, the picture's latents."""

    adapter: int
    weight: float
    embeds: torch.Tensor
    negative: torch.Tensor
    #: img2img: the picture's VAE latents (1, 4, h, w) and how far to go, else None
    latents: torch.Tensor | None = None
    strength: float | None = None


def open_picture(data: bytes) -> Image.Image:
    """The uploaded picture (already checked by the API), upright, RGB."""
    import io

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:
        raise InvalidInput(f"the reference picture cannot be read ({exc})", "image") from None
    return ImageOps.exif_transpose(image).convert("RGB")


def choose(picture: Image.Image, kinds: Sequence[str], log: LogFn) -> tuple[int, Image.Image]:
    """Which adapter and which part of the picture: the face, cropped, for "plus-face"
    (when the preset has it and a face is found), else the whole picture for "plus"."""
    if "plus-face" in kinds:
        try:
            face = faces.detector().find(picture)
        except ModelUnavailable as exc:  # the operator did not install the detector
            log(f"face detection unavailable ({exc.message}): treating the picture as no face")
            face = None
        if face is not None:
            box = faces.crop_box(face, picture.size)
            log(
                f"face found in the picture (score {face.score:.2f}): using it, cropped to "
                f"{box[2] - box[0]}x{box[3] - box[1]}, with IP-Adapter plus-face"
            )
            return kinds.index("plus-face"), picture.crop(box)
        if "plus" in kinds:
            log("no face found in the picture: using the whole picture")
            return kinds.index("plus"), picture
        log("no face found in the picture: using the whole picture with plus-face")
        return kinds.index("plus-face"), picture
    return kinds.index("plus"), picture


def noisy_negative(picture: Image.Image, noise: float, seed: int) -> Image.Image:
    """The picture shuffled and noised for the negative embedding (see the module)."""
    import cv2

    rgb = np.asarray(picture.convert("RGB").resize((224, 224), Image.BICUBIC), np.float32)
    rgb = rgb[::-1, ::-1] / 255.0  # flipped both ways: the layout changes
    rng = np.random.default_rng(seed)
    sigma = max(noise * 3.5, 0.1) * 224 / 32
    field = [
        cv2.GaussianBlur(rng.uniform(-1, 1, (224, 224)).astype(np.float32), (0, 0), sigma)
        for _ in range(2)
    ]
    strength = 75.0 * 224 / 512  # displacement, in pixels, before smoothing shrinks it
    grid_y, grid_x = np.mgrid[0:224, 0:224].astype(np.float32)
    warped = cv2.remap(
        np.ascontiguousarray(rgb),
        grid_x + strength * field[0],
        grid_y + strength * field[1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )
    warped = warped + (0.25 * (1 - noise) + 0.05) * rng.standard_normal(warped.shape)
    return Image.fromarray((np.clip(warped, 0, 1) * 255 + 0.5).astype(np.uint8))


@torch.inference_mode()
def encode(pipe: Any, images: list[Image.Image | None]) -> list[torch.Tensor]:
    """CLIP image-encoder features of each picture (None: a black picture), as the
    "plus" adapters take them (the penultimate hidden states): ``(1, 1, tokens, dim)``
    each, in one encoder call."""
    encoder = pipe.image_encoder
    blank = Image.new("RGB", (224, 224))
    pixels = pipe.feature_extractor(
        [im or blank for im in images], return_tensors="pt"
    ).pixel_values
    for n, image in enumerate(images):
        if image is None:
            pixels[n] = 0  # diffusers' negative: zeros after normalisation
    param = next(encoder.parameters())
    hidden = encoder(pixels.to(param.device, param.dtype), output_hidden_states=True)
    states = hidden.hidden_states[-2]
    return [states[n : n + 1][None] for n in range(len(images))]


def prepare(
    pipe: Any,
    kinds: Sequence[str],
    picture: Image.Image,
    *,
    weight: float,
    noise: float,
    seed: int,
    strength: float | None,
    size: tuple[int, int],
    log: LogFn,
) -> LaneReference:
    """A job's :class:`LaneReference`: the adapter and crop (:func:`choose`), the
    embeddings (and the noised negative), and the latents for img2img."""
    adapter, part = choose(picture, kinds, log)
    negative = noisy_negative(part, noise, seed) if noise > 0 else None
    embeds, negative_embeds = encode(pipe, [part, negative])
    latents = None
    if strength is not None and strength < 1.0:
        latents = encode_latents(pipe.vae, cover(picture, size))
    return LaneReference(adapter, weight, embeds, negative_embeds, latents, strength)


def cover(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The picture scaled to cover ``size`` (width, height) and centre-cropped."""
    return ImageOps.fit(picture.convert("RGB"), size, Image.LANCZOS)


@torch.inference_mode()
def encode_latents(vae: Any, picture: Image.Image) -> torch.Tensor:
    """The picture's SDXL latents (the distribution's mode, scaled as the UNet takes
    them); a float16 VAE that asks for it (``force_upcast``) encodes in float32."""
    from diffusers.utils.torch_utils import get_module_execution_device

    array = np.asarray(picture, np.float32) / 127.5 - 1.0
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None]
    dtype = vae.dtype
    upcast = dtype == torch.float16 and vae.config.force_upcast
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        param = next(vae.encoder.parameters())
        device = get_module_execution_device(vae)
        latents = vae.encode(pixels.to(device, param.dtype)).latent_dist.mode()
    finally:
        if upcast:
            vae.to(dtype=dtype)
    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        mean_t = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
        std_t = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
        return (latents - mean_t) * vae.config.scaling_factor / std_t
    return latents * vae.config.scaling_factor


def step_inputs(
    lanes: Sequence[Any],
    count: int,
    halves: int,
    latent_size: tuple[int, int],
    blank: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], list[float]]:
    """One UNet call's IP-Adapter inputs for ``lanes`` (in batch order, each
    ``[negative..., cond...]`` when guided): per adapter the image embeddings, the
    per-sample weight masks (None for an adapter no lane uses) and the scales.
    ``blank``: a ``(1, 1, 1, dim)`` embedding for adapters no lane has a picture for."""
    used = [False] * count
    for lane in lanes:
        ref = lane.reference
        if ref is not None and ref.weight > 0:
            used[ref.adapter] = True
    # The embedding shape of each adapter: that of a lane using it (else one token).
    shapes: list[torch.Tensor | None] = [None] * count
    for lane in lanes:
        if lane.reference is not None and shapes[lane.reference.adapter] is None:
            shapes[lane.reference.adapter] = lane.reference.embeds
    template = next((s for s in shapes if s is not None), blank)
    embeds: list[torch.Tensor] = []
    masks: list[torch.Tensor | None] = []
    h, w = latent_size
    for index in range(count):
        like = shapes[index]
        if like is None:
            like = template
        parts, weights = [], []
        for lane in lanes:
            ref = lane.reference
            mine = ref is not None and ref.adapter == index
            n = lane.size
            for half in range(halves):
                if mine:
                    tensor = ref.negative if (halves == 2 and half == 0) else ref.embeds
                    parts.append(tensor.expand(n, *tensor.shape[1:]))
                    weights += [ref.weight] * n
                else:
                    parts.append(like.new_zeros((n, *like.shape[1:])))
                    weights += [0.0] * n
        embeds.append(torch.cat(parts))
        if used[index]:
            device, dtype = embeds[-1].device, embeds[-1].dtype
            weight = torch.tensor(weights, device=device, dtype=dtype).view(-1, 1, 1, 1)
            masks.append(weight.expand(-1, 1, h, w).contiguous())
        else:
            masks.append(None)
    return embeds, masks, [1.0 if u else 0.0 for u in used]
