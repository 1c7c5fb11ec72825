"""Reference pictures on native jobs and packs: admission, checks and storage (no worker).

The built-in presets decide which take a picture (``Preset.reference_problem``: an
IP-Adapter configured); end-to-end runs with a tiny IP-Adapter are in
``test_reference_e2e.py``.
"""

from __future__ import annotations

import base64
import socket
import time

import pytest
from accounts.helpers import Client, bearer

from sticker_maker.api.references import preset_defaults
from sticker_maker.bounds import MAX_IMAGE_SIDE, MIN_UPLOAD_SIDE
from tests.packs.conftest import png


def _data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _job(client: Client, key: str, **fields: object) -> object:
    body = {"preset": "face-to-sticker", "prompt": "a person", **fields}
    return client.post("/v1/jobs", headers=bearer(key), json=body)


def _fields(response: object) -> list[str]:
    return [f["field"] for f in response.json()["error"]["fields"]]  # type: ignore[attr-defined]


def _stored(client: Client) -> set[str]:
    root = client.svc.settings.storage_dir
    return {p.name for p in root.rglob("*") if p.is_file()}


def test_a_reference_job_stores_the_checked_picture_and_owns_it(client: Client) -> None:
    key = client.new_key()
    response = _job(
        client,
        key,
        image=_data_url(png((80, 60))),
        ip_adapter_weight=0.7,
        ip_adapter_noise=0.1,
        strength=0.8,
        prompt_strength=5,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["input"]["guidance_scale"] == 5
    reference = body["input"]["reference"]
    assert reference["ip_adapter_weight"] == 0.7 and reference["ip_adapter_noise"] == 0.1
    assert reference["strength"] == 0.8
    assert reference["image"].startswith("http://testserver/files/")  # its URL, not its name

    job = client.svc.jobs.get(body["id"])
    name = job.input.reference.image  # type: ignore[union-attr]
    assert job.input_files == [name]
    stored = client.svc.storage.get(name)
    assert stored.startswith(b"\x89PNG")
    # the job's owner reads it; another key does not
    assert client.get(reference["image"], headers=bearer(key)).content == stored
    other = client.new_key()
    assert client.get(reference["image"], headers=bearer(other)).status_code == 404


def test_an_upload_and_an_output_url_are_references_too(client: Client) -> None:
    key = client.new_key()
    uploaded = client.post(
        "/v1/files",
        headers=bearer(key),
        files={"content": ("me.png", png(), "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    response = _job(client, key, image=uploaded.json()["urls"]["get"])
    assert response.status_code == 201, response.text
    preset = client.svc.presets.get("face-to-sticker")
    weight, noise = preset_defaults(preset)  # the preset's own (0.2 and 0.5 after #15's engine)
    assert response.json()["input"]["reference"]["ip_adapter_weight"] == weight
    assert response.json()["input"]["reference"]["ip_adapter_noise"] == noise

    other = client.new_key()
    refused = _job(client, other, image=uploaded.json()["urls"]["get"])
    assert refused.status_code == 400 and _fields(refused) == ["image"]


def test_bad_reference_pictures_are_refused_naming_image(client: Client) -> None:
    key = client.new_key()
    before = _stored(client)
    cases = [
        _data_url(b"this is not an image at all", "text/plain"),
        _data_url(png((MIN_UPLOAD_SIDE - 1, 64))),  # too small
        _data_url(png((MAX_IMAGE_SIDE + 8, 16))),  # too large
        _data_url(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
        "ftp://example.com/me.png",
        "me.png",
        "data:image/png,notbase64",
    ]
    for image in cases:
        response = _job(client, key, image=image)
        assert response.status_code == 400, (image[:40], response.text)
        assert _fields(response) == ["image"], response.json()
    assert _stored(client) == before  # nothing stored, nothing queued
    assert client.svc.jobs.list_for_key(key.split("_")[1]) == []


def test_a_private_address_is_refused_and_never_connected_to(client: Client) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        key = client.new_key()
        for url in (
            f"http://127.0.0.1:{port}/me.png",
            f"http://localhost:{port}/me.png",
            "http://10.1.2.3/me.png",
            "http://169.254.169.254/latest/meta-data",
        ):
            response = _job(client, key, image=url)
            assert response.status_code == 400, response.text
            assert _fields(response) == ["image"]
            assert "cannot be fetched" in response.text
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_presets_without_an_ip_adapter_refuse_a_picture_before_reading_it(
    client: Client,
) -> None:
    key = client.new_key()
    response = _job(client, key, preset="stickersheet", image="http://10.9.9.9/never-read.png")
    assert response.status_code == 400
    assert _fields(response) == ["image"] and "cannot make stickers of a picture" in response.text


def test_reference_options_need_an_image_and_prompt_strength_is_one_name(client: Client) -> None:
    key = client.new_key()
    for field in ("ip_adapter_weight", "ip_adapter_noise", "strength"):
        response = _job(client, key, **{field: 0.5})
        assert response.status_code == 400 and _fields(response) == [field], response.text
    both = _job(client, key, prompt_strength=4, guidance_scale=4)
    assert both.status_code == 400 and _fields(both) == ["prompt_strength"]
    for field, value in (("ip_adapter_weight", 1.5), ("strength", 0), ("prompt_strength", 31)):
        response = _job(client, key, image=_data_url(png()), **{field: value})
        assert response.status_code == 400 and _fields(response) == [field], response.text
    alone = _job(client, key, preset="sticker-maker", prompt_strength=3)
    assert alone.status_code == 201 and alone.json()["input"]["guidance_scale"] == 3


def test_a_refused_submit_leaves_no_stored_picture(client: Client) -> None:
    key = client.new_key(credits=0)
    before = _stored(client)
    response = _job(client, key, image=_data_url(png()))
    assert response.status_code == 406, response.text
    assert _stored(client) == before


def test_a_pack_of_a_picture(client: Client) -> None:
    key = client.new_key()
    response = client.post(
        "/v1/packs",
        headers=bearer(key),
        json={
            "character": "a cartoon person",
            "preset": "face-to-sticker",
            "count": 3,
            "image": _data_url(png()),
            "ip_adapter_weight": 0.5,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["input"]["reference"]["ip_adapter_weight"] == 0.5
    assert body["input"]["samples"] == 3
    refused = client.post(
        "/v1/packs",
        headers=bearer(key),
        json={"character": "x", "image": "http://127.0.0.1:9/x.png", "count": 3},
    )
    assert refused.status_code == 400 and _fields(refused) == ["image"]  # sticker-maker: no IP-A


def test_retention_deletes_the_picture_with_the_job(client: Client) -> None:
    from sticker_maker.accounts.retention import sweep

    key = client.new_key()
    response = _job(client, key, image=_data_url(png()))
    assert response.status_code == 201, response.text
    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None and job.input.reference is not None  # type: ignore[union-attr]
    name = job.input.reference.image  # type: ignore[union-attr]
    assert client.svc.jobs.fail(job, "not this test's", 0.5)
    assert client.svc.storage.get(name)
    retention = client.svc.settings.retention_seconds
    sweep(client.svc.db, client.svc.storage, retention, now=time.time() + retention + 60)
    with pytest.raises(FileNotFoundError):
        client.svc.storage.get(name)
