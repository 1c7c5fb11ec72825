"""fofr/face-to-sticker through the real ``replicate`` client (1.0.7), the app on a socket;
a test thread plays the worker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import replicate
from replicate.exceptions import ReplicateError
from replicate_api.conftest import App

from sticker_maker.api import create_app
from sticker_maker.api.face_to_sticker import VERSION_IDS
from sticker_maker.config import Settings
from tests.packs.conftest import png

LATEST = VERSION_IDS[0]


@pytest.fixture
def face_app(tmp_path: Path, light_presets: Path) -> Iterator[App]:
    settings = Settings.load(tmp_path / "home", presets=light_presets)
    served = App(create_app(settings, run_worker=False))
    try:
        yield served
    finally:
        served.close()


def test_the_model_and_its_versions_describe_the_published_inputs(face_app: App) -> None:
    model = face_app.replicate.models.get("fofr/face-to-sticker")
    assert model.latest_version is not None and model.latest_version.id == LATEST
    schema = model.latest_version.openapi_schema["components"]["schemas"]
    props = schema["Input"]["properties"]
    defaults = {name: prop.get("default") for name, prop in props.items()}
    assert defaults == {
        "image": None,
        "prompt": "a person",
        "negative_prompt": "",
        "width": 1024,
        "height": 1024,
        "steps": 20,
        "seed": None,
        "prompt_strength": 7.0,
        "instant_id_strength": 1.0,
        "ip_adapter_weight": 0.2,
        "ip_adapter_noise": 0.5,
        "upscale": False,
        "upscale_steps": 10,
    }
    assert schema["Input"]["required"] == ["image"]
    assert props["image"]["format"] == "uri" and props["image"]["x-order"] == 0
    assert "non-commercial" in props["instant_id_strength"]["description"]
    assert schema["Output"]["items"]["format"] == "uri"
    pinned = model.versions.get(VERSION_IDS[1])
    assert pinned.id == VERSION_IDS[1]
    assert [v.id for v in model.versions.list()] == list(VERSION_IDS)


def test_replicate_run_with_a_file_makes_a_reference_job(face_app: App) -> None:
    stop = face_app.auto_worker()
    try:
        output = face_app.replicate.run(
            f"fofr/face-to-sticker:{LATEST}",
            input={
                "image": io.BytesIO(png()),
                "prompt": "a person, smiling",
                "instant_id_strength": 0.4,
                "seed": 11,
            },
        )
    finally:
        stop.set()
    assert isinstance(output, list) and len(output) == 2  # the image, then its cut-out
    assert all(str(url).startswith(face_app.root + "/files/") for url in output)
    job = face_app.svc.jobs.list_for_key(face_app.token.split("_")[1])[0]
    assert job.input.preset == "face-to-sticker"
    assert job.input.guidance_scale == 7.0 and job.input.seed == 11
    assert job.input.reference is not None
    assert job.input.reference.ip_adapter_weight == 0.2
    assert job.input.reference.ip_adapter_noise == 0.5
    assert face_app.svc.storage.get(job.input.reference.image).startswith(b"\x89PNG")


def test_a_data_url_is_shown_as_the_stored_file(face_app: App) -> None:
    client = replicate.Client(api_token=face_app.token, base_url=face_app.root)
    prediction = client.models.predictions.create(
        "fofr/face-to-sticker",
        input={"image": io.BytesIO(png()), "ip_adapter_weight": 0.9},
        file_encoding_strategy="base64",
    )
    assert prediction.status == "starting"
    assert prediction.input["image"].startswith(face_app.root + "/files/")
    assert prediction.input["ip_adapter_weight"] == 0.9
    job = face_app.svc.jobs.get(prediction.id)
    assert job.input.reference is not None and job.input.reference.ip_adapter_weight == 0.9


def test_bad_inputs_are_422_naming_the_input(face_app: App) -> None:
    cases = [
        ({"prompt": "a person"}, "input.image"),
        ({"image": "http://10.0.0.8/me.png"}, "input.image"),
        ({"image": "data:image/png;base64,aGVsbG8="}, "input.image"),
        ({"image": "data:image/png;base64,aGVsbG8=", "instant_id_strength": 2}, "input.instant"),
        ({"image": "http://example.com/x.png", "guidance_scale": 3}, "input.guidance_scale"),
    ]
    for given, field in cases:
        with pytest.raises(ReplicateError) as raised:
            face_app.replicate.models.predictions.create("fofr/face-to-sticker", input=given)
        assert raised.value.status == 422, given
        assert field in (raised.value.detail or ""), (given, raised.value.detail)
    assert face_app.svc.jobs.list_for_key(face_app.token.split("_")[1]) == []
