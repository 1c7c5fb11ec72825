"""Learned removers: a real ONNX network end to end, and the rembg adapter."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sticker_maker.finishing import FinishingError, load_model, remove_background
from sticker_maker.finishing._model import DEFAULT_INPUT_SIZE, OnnxSaliencyModel, RembgModel

from .helpers import alpha_of


def _photo(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (250, 40, 40)
    return Image.fromarray(arr, "RGB")


def test_onnx_file_runs_end_to_end(tiny_onnx: Path) -> None:
    pytest.importorskip("onnxruntime")
    image = _photo(300, 200)  # not the network's 64x64: exercises both resizes
    result = remove_background(image, method="model", model=str(tiny_onnx))
    assert result.method_used == "model"
    assert result.image.mode == "RGBA" and result.image.size == (300, 200)
    a = alpha_of(result.image)
    assert a.min() == 0 and a.max() == 255  # the saliency map is stretched to full range
    assert len(np.unique(a)) > 10  # a soft map, not a constant
    assert any("tiny.onnx" in n for n in result.notes)


def test_onnx_declared_size_and_backends_agree(tiny_onnx: Path) -> None:
    pytest.importorskip("onnxruntime")
    rgb = np.asarray(_photo(120, 90))
    ort_model = OnnxSaliencyModel(tiny_onnx, backend="onnxruntime")
    cv_model = OnnxSaliencyModel(tiny_onnx, backend="opencv")
    assert ort_model.input_size == (64, 64)
    assert (ort_model.backend, cv_model.backend) == ("onnxruntime", "opencv")
    a, b = ort_model.predict(rgb), cv_model.predict(rgb)
    assert a.shape == b.shape == (90, 120)
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_onnx_dynamic_input_uses_default_size(tiny_onnx_dynamic: Path) -> None:
    model = OnnxSaliencyModel(tiny_onnx_dynamic)
    assert model.input_size == DEFAULT_INPUT_SIZE
    assert model.predict(np.zeros((50, 70, 3), np.uint8)).shape == (50, 70)


def test_auto_uses_model_only_for_busy_backgrounds(tiny_onnx: Path) -> None:
    busy = _photo(128, 128)
    flat = Image.new("RGB", (128, 128), "white")
    flat.paste((0, 0, 200), (32, 32, 96, 96))
    assert remove_background(busy, model=str(tiny_onnx)).method_used == "model"
    assert remove_background(flat, model=str(tiny_onnx)).method_used == "model-free"


def test_loaded_models_are_cached(tiny_onnx: Path) -> None:
    assert load_model(str(tiny_onnx)) is load_model(tiny_onnx)


def test_missing_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FinishingError, match=r"model=.*nope\.onnx.*no such ONNX file"):
        load_model(str(tmp_path / "nope.onnx"))


def test_unknown_backend_is_rejected(tiny_onnx: Path) -> None:
    with pytest.raises(FinishingError, match=r"backend='tpu'.*'auto', 'onnxruntime', 'opencv'"):
        OnnxSaliencyModel(tiny_onnx, backend="tpu")


def test_rembg_name_without_rembg_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rembg", None)  # makes "import rembg" fail
    with pytest.raises(FinishingError, match=r"model='birefnet-general'.*rembg"):
        RembgModel("birefnet-general")


def test_rembg_adapter_uses_session_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, object] = {}

    def new_session(name: str) -> object:
        calls["name"] = name
        return "session"

    def remove(img: Image.Image, *, session: object, only_mask: bool) -> Image.Image:
        calls["session"], calls["only_mask"] = session, only_mask
        mask = np.zeros((img.height, img.width), np.uint8)
        mask[:, : img.width // 2] = 255
        return Image.fromarray(mask, "L")

    fake = types.ModuleType("rembg")
    fake.new_session = new_session  # type: ignore[attr-defined]
    fake.remove = remove  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rembg", fake)
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    result = remove_background(image, method="model", model=RembgModel("isnet-general-use"))
    assert calls == {"name": "isnet-general-use", "session": "session", "only_mask": True}
    a = alpha_of(result.image)
    assert (a[:, :20] == 255).all() and (a[:, 20:] == 0).all()


def test_onnx_without_onnxruntime_runs_on_opencv(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = OnnxSaliencyModel(tiny_onnx)
    assert model.backend == "opencv"
    assert model.input_size == (64, 64)  # read from the ONNX file itself
    assert model.predict(np.zeros((30, 40, 3), np.uint8)).shape == (30, 40)


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv"])
def test_real_u2netp_weights_cut_out_a_noto_sticker(u2netp: Path, noto: Path, backend: str) -> None:
    """``remover = "model"`` with a real learned network, through the operators' ONNX path."""
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    model = OnnxSaliencyModel(u2netp, backend=backend)
    assert model.backend == backend and model.input_size == (320, 320)  # declared by the file
    folder = noto / "composite"
    truth = np.asarray(Image.open(folder / "case003_alpha.png")) >= 128
    for kind in ("white", "noise"):
        result = remove_background(
            Image.open(folder / f"case003_{kind}.png"), method="model", model=model
        )
        assert result.method_used == "model" and any("u2netp.onnx" in n for n in result.notes)
        a = alpha_of(result.image)
        union = np.logical_or(a >= 128, truth).sum()
        assert np.logical_and(a >= 128, truth).sum() / union >= 0.95


def test_real_u2netp_by_path_is_cached_and_used_by_auto_on_busy_backdrops(u2netp: Path) -> None:
    pytest.importorskip("onnxruntime")
    assert load_model(str(u2netp)) is load_model(u2netp)
    rng = np.random.default_rng(2)
    busy = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # no flat backdrop
    busy[64:192, 64:192] = (240, 200, 30)
    result = remove_background(Image.fromarray(busy, "RGB"), model=str(u2netp))
    assert result.method_used == "model"
    assert any("not flat" in n and "u2netp.onnx" in n for n in result.notes)
