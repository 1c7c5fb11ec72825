"""``cog.yaml`` + ``predict.py`` through Cog's own Python package (0.23, no Docker): its
inspector reads the inputs as a Cog build would, its checker validates values, and the
predictor runs on the tiny models (slow)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

from sticker_maker.api.replicate_models import V2Input

cog_inspector = pytest.importorskip("cog._inspector")


def _info() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # BasePredictor: kept for old Cogs
        return cog_inspector.create_predictor("predict", "Predictor")


def test_cog_yaml_points_at_the_predictor() -> None:
    config = yaml.safe_load((REPO / "cog.yaml").read_text())
    assert config["predict"] == "predict.py:Predictor"
    assert config["build"]["gpu"] is True
    assert (REPO / config["build"]["python_requirements"]).is_file()


def test_inputs_are_the_published_v2_inputs() -> None:
    info = _info()
    published = V2Input.model_json_schema()["properties"]
    assert list(info.inputs) == list(published)  # same names, same order
    for name, field in info.inputs.items():
        expected = published[name]
        assert field.default == expected.get("default"), name
        assert field.ge == expected.get("minimum"), name
        assert field.le == expected.get("maximum"), name
    assert info.inputs["output_format"].choices == ["webp", "jpg", "png"]
    assert info.output.kind.name == "LIST" and info.output.type.name == "PATH"


def test_cog_checks_values_before_predict() -> None:
    info = _info()
    with pytest.raises(ValueError, match="number_of_images"):
        cog_inspector.check_input(info.inputs, {"number_of_images": 11})
    with pytest.raises(ValueError, match="output_format"):
        cog_inspector.check_input(info.inputs, {"output_format": "gif"})
    filled = cog_inspector.check_input(info.inputs, {"prompt": "a fox"})
    assert (filled["width"], filled["steps"], filled["output_format"]) == (1152, 17, "webp")


@pytest.mark.slow
def test_predict_on_the_tiny_models(presets_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("STICKER_MAKER_PRESETS", str(presets_file))
    import predict

    predictor = predict.Predictor()
    predictor.setup()
    inputs = cog_inspector.check_input(
        _info().inputs,
        {
            "prompt": "a fox",
            "width": 64,
            "height": 64,
            "steps": 4,
            "number_of_images": 2,
            "output_format": "png",
            "seed": 7,
        },
    )
    paths = predictor.predict(**inputs)
    assert [p.suffix for p in paths] == [".png", ".png"]
    images = [Image.open(p) for p in paths]
    assert all(i.mode == "RGBA" and i.size == (64, 64) for i in images)
    with pytest.raises(Exception, match=r"input\.width"):  # not a multiple of 8
        predictor.predict(**{**inputs, "width": 100})
