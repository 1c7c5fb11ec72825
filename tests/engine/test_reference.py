"""Stickers of a reference picture (IP-Adapter plus / plus-face, face crop, noise,
img2img) and packs, through the production Engine and a tiny IP-Adapter saved in
h94/IP-Adapter's layout and loaded by diffusers' own ``load_ip_adapter``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TinyModels
from devices import engine_options

from sticker_maker.errors import InvalidInput, JobCanceled
from sticker_maker.params import Expression, JobInput, Reference, parse_request, resolve
from sticker_maker.presets import PresetRegistry, load_presets

pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from sticker_maker.engine.pipeline import Engine, JobResult, Request  # noqa: E402

pytestmark = pytest.mark.slow


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


#: real photos scikit-image ships: a face (the astronaut), a cat, a cup of coffee
FACE = png(skimage_data.astronaut())
CAT = png(skimage_data.chelsea())
COFFEE = png(skimage_data.coffee())


@pytest.fixture(scope="module")
def ip_adapter(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import build_tiny_ip_adapter

    return build_tiny_ip_adapter(tiny_models.sdxl, tmp_path_factory.mktemp("ip") / "IP-Adapter")


@pytest.fixture(scope="module")
def registry(
    tiny_models: TinyModels, ip_adapter: Path, tmp_path_factory: pytest.TempPathFactory
) -> PresetRegistry:
    from tiny_models import IP_ADAPTER_PLUS_FACE_FILE, IP_ADAPTER_PLUS_FILE

    path: Path = tmp_path_factory.mktemp("reference") / "presets.toml"
    path.write_text(
        f"""
[presets.face]
base = "{tiny_models.sdxl}"
scheduler = "Euler"
steps = 3
width = 64
height = 64
ip_adapter = "{ip_adapter}"
ip_adapter_weights = "{IP_ADAPTER_PLUS_FILE}"
ip_adapter_face_weights = "{IP_ADAPTER_PLUS_FACE_FILE}"

[presets.broken]
base = "{tiny_models.sdxl}"
scheduler = "Euler"
steps = 3
width = 64
height = 64
ip_adapter = "/no/such/IP-Adapter"
ip_adapter_weights = "{IP_ADAPTER_PLUS_FILE}"

[presets.plain]
base = "{tiny_models.sdxl}"
scheduler = "Euler"
steps = 3
width = 64
height = 64
"""
    )
    return load_presets(path)


@pytest.fixture(scope="module")
def engine(registry: PresetRegistry) -> Engine:
    return Engine(registry, options=engine_options())


def job(registry: PresetRegistry, preset: str = "face", **fields: Any) -> JobInput:
    reference = fields.pop("reference", None)
    resolved = resolve(
        parse_request({"preset": preset, "prompt": "a person", "seed": 7, **fields}), registry
    )
    return resolved.model_copy(update={"reference": reference})


def ref(weight: float = 1.0, noise: float = 0.0, strength: float | None = None) -> Reference:
    return Reference(
        image="upload.png", ip_adapter_weight=weight, ip_adapter_noise=noise, strength=strength
    )


def run(engine: Engine, *requests: Request) -> list[JobResult]:
    results: list[JobResult] = [JobResult() for _ in requests]
    wired = []
    for n, r in enumerate(requests):
        r.on_done = lambda result, n=n: results.__setitem__(n, result)
        wired.append(r)
    engine.run(wired)
    return results


def request(job: JobInput, picture: bytes | None = None, **kw: Any) -> Request:
    return Request(job, lambda _r: None, picture=picture, **kw)


def pixels(result: JobResult) -> np.ndarray:
    assert result.error is None, result.error
    return np.stack([np.asarray(g.image, dtype=np.float32) for g in result.images])


def test_reference_lanes_batch_and_each_equals_its_job_alone(
    engine: Engine, registry: PresetRegistry
) -> None:
    face = job(registry, reference=ref(0.8))
    cat = job(registry, reference=ref(1.0))
    plain = job(registry)
    alone_face = pixels(run(engine, request(face, FACE))[0])
    alone_plain = pixels(run(engine, request(plain))[0])
    together = run(engine, request(face, FACE), request(cat, CAT), request(plain))
    assert all(r.batched == 3 for r in together)
    # one loop, each lane its own picture and weight: the job's pixels as alone
    assert np.abs(pixels(together[0]) - alone_face).max() <= 2
    assert np.abs(pixels(together[2]) - alone_plain).max() <= 2
    # another picture gives another image; the picture changes the image at all
    assert np.abs(pixels(together[1]) - alone_face).mean() > 1
    assert np.abs(alone_face - alone_plain).mean() > 1


def test_a_prompt_only_job_is_the_same_with_an_adapter_loaded(
    registry: PresetRegistry, engine: Engine
) -> None:
    fresh = Engine(registry, options=engine_options())
    plain = job(registry)
    before = pixels(run(fresh, request(plain))[0])
    run(fresh, request(job(registry, reference=ref()), FACE))  # loads the IP-Adapter
    assert fresh.loads.get("ip_adapter") == 1
    after = pixels(run(fresh, request(plain))[0])
    assert np.abs(before - after).max() <= 1


def test_the_face_is_found_and_cropped_else_the_whole_picture_is_used(
    engine: Engine, registry: PresetRegistry
) -> None:
    logs: dict[str, list[str]] = {"face": [], "cat": [], "coffee": []}
    results = run(
        engine,
        request(job(registry, reference=ref()), FACE, on_log=logs["face"].append),
        request(job(registry, reference=ref()), CAT, on_log=logs["cat"].append),
        request(job(registry, reference=ref()), COFFEE, on_log=logs["coffee"].append),
    )
    assert all(r.error is None for r in results)
    assert any("face found in the picture" in line for line in logs["face"])
    assert "plus-face" in " ".join(logs["face"])
    for name in ("cat", "coffee"):
        assert "no face found in the picture: using the whole picture" in logs[name]


def test_the_face_box_is_on_the_astronauts_face() -> None:
    from sticker_maker.engine import faces

    picture = Image.open(io.BytesIO(FACE))
    face = faces.detector().find(picture)
    assert face is not None and face.score > 0.8
    # her face: about x 180-275, y 80-180 in the 512x512 picture
    assert 170 < face.left < 200 and 70 < face.top < 100 and 70 < face.width < 120
    left, top, right, bottom = faces.crop_box(face, picture.size)
    assert right - left == bottom - top and left <= face.left and right >= face.left + face.width


def test_noise_changes_the_negative_embedding_and_the_image(
    engine: Engine, registry: PresetRegistry
) -> None:
    clean = pixels(run(engine, request(job(registry, reference=ref(noise=0.0)), FACE))[0])
    noisy = pixels(run(engine, request(job(registry, reference=ref(noise=0.5)), FACE))[0])
    again = pixels(run(engine, request(job(registry, reference=ref(noise=0.5)), FACE))[0])
    assert np.abs(clean - noisy).mean() > 0.5
    assert np.array_equal(noisy, again)  # the noise is drawn from the job's seed


def test_img2img_strength_starts_from_the_picture_and_cuts_the_steps(
    engine: Engine, registry: PresetRegistry
) -> None:
    seen: list[tuple[int, int]] = []
    # weight 0: the picture acts through img2img alone
    coffee = job(registry, steps=4, reference=ref(0.0, strength=0.5))
    cat = job(registry, steps=4, reference=ref(0.0, strength=0.5))
    results = run(
        engine,
        request(coffee, COFFEE, on_progress=lambda d, t: seen.append((d, t))),
        request(cat, CAT),
        request(job(registry, steps=4, reference=ref(0.0)), COFFEE),
    )
    assert results[0].batched == 3  # img2img lanes batch with the others
    assert seen[-1] == (2, 2)  # half of 4 steps
    from_coffee, from_cat, from_noise = (pixels(r)[0] for r in results)
    assert np.abs(from_coffee - from_cat).mean() > 1  # it starts from its picture
    assert np.abs(from_coffee - from_noise).mean() > 1


def test_a_cancelled_reference_lane_leaves_and_the_others_finish(
    engine: Engine, registry: PresetRegistry
) -> None:
    steps = {"n": 0}

    def cancel() -> bool:
        steps["n"] += 1
        return steps["n"] >= 1

    results = run(
        engine,
        request(job(registry, reference=ref()), FACE, should_cancel=cancel),
        request(job(registry, reference=ref()), CAT),
    )
    assert isinstance(results[0].error, JobCanceled)
    assert results[1].error is None and len(results[1].images) == 1


def test_a_preset_without_ip_adapter_refuses_a_picture_naming_image(
    engine: Engine, registry: PresetRegistry
) -> None:
    problem = registry.get("plain").reference_problem()
    assert problem and "cannot make stickers of a picture" in problem
    assert registry.get("face").reference_problem() is None
    with pytest.raises(InvalidInput) as err:
        engine.check_inputs(job(registry, preset="plain", reference=ref()))
    assert err.value.errors[0].field == "image"


def test_a_missing_ip_adapter_fails_the_job_naming_the_preset_key(
    engine: Engine, registry: PresetRegistry
) -> None:
    from sticker_maker.errors import ModelUnavailable

    broken, fine = run(
        engine,
        request(job(registry, preset="broken", reference=ref()), CAT),
        request(job(registry, preset="broken")),  # same batch, no picture: it runs
    )
    assert isinstance(broken.error, ModelUnavailable)
    assert "/no/such/IP-Adapter" in broken.error.message and "ip_adapter" in broken.error.message
    assert fine.error is None and len(fine.images) == 1


def test_a_pack_is_one_lane_of_one_seed_with_a_prompt_per_expression(
    engine: Engine, registry: PresetRegistry
) -> None:
    expressions = tuple(
        Expression(name=n, emoji=e, prompt=f"{n} face")
        for n, e in (("happy", "😀"), ("sad", "😢"), ("angry", "😠"))
    )
    pack = job(registry, reference=ref()).model_copy(
        update={"expressions": expressions, "samples": 3}
    )
    [result] = run(engine, request(pack, FACE))
    images = pixels(result)
    assert len(images) == 3 and [g.seed for g in result.images] == [7, 7, 7]
    assert np.abs(images[0] - images[1]).mean() > 0.5  # another expression, another image
    # each sticker equals the same prompt run alone (one loop, not three jobs)
    sad = job(registry, prompt="a person, sad face", reference=ref())
    assert np.abs(pixels(run(engine, request(sad, FACE))[0])[0] - images[1]).max() <= 2


def test_a_big_pack_runs_in_unet_slices_when_a_call_runs_out_of_memory(
    registry: PresetRegistry,
) -> None:
    import torch

    expressions = tuple(
        Expression(name=f"e{n}", emoji="🙂", prompt=f"expression {n}") for n in range(5)
    )
    pack = job(registry, reference=ref()).model_copy(
        update={"expressions": expressions, "samples": 5}
    )
    whole = pixels(run(Engine(registry, options=engine_options()), request(pack, FACE))[0])
    small = Engine(registry, options=engine_options())
    unet = small.models.prepare(registry.get("face"), 1.0).pipe.unet
    calls: list[int] = []

    def at_most_four(_module: Any, args: tuple[Any, ...]) -> None:
        calls.append(args[0].shape[0])
        if args[0].shape[0] > 4:  # a test double for a GPU that holds 4 samples
            raise torch.OutOfMemoryError("CUDA out of memory (test double)")

    hook = unet.register_forward_pre_hook(at_most_four)
    try:
        sliced = pixels(run(small, request(pack, FACE))[0])
    finally:
        hook.remove()
    # 10 samples (5 stickers, guided): halved to 5, then to 2 per call; the bound is kept
    assert calls[:3] == [10, 5, 2] and max(calls[3:]) <= 2
    assert small.unet_samples == {(str(registry.get("face").base), 64, 64): 2}
    assert np.abs(sliced - whole).max() <= 2


def test_without_the_face_detector_the_whole_picture_is_used_and_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sticker_maker.engine import faces
    from sticker_maker.engine import reference as reference_mod
    from sticker_maker.errors import ModelUnavailable

    def missing() -> Any:
        raise ModelUnavailable("the face detector is not installed")

    monkeypatch.setattr(faces, "detector", missing)
    lines: list[str] = []
    picture = Image.open(io.BytesIO(FACE))
    adapter, part = reference_mod.choose(picture, ("plus", "plus-face"), lines.append)
    assert adapter == 0 and part.size == picture.size
    assert "face detection unavailable" in lines[0]
    assert lines[-1] == "no face found in the picture: using the whole picture"
