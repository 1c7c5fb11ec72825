"""The image check, with tiny random classifiers in the real Hugging Face layout made to
answer each verdict: through the real worker and model process on the tiny SDXL model,
a refused image is never stored, returned, previewed or sent; the job fails with
``content_blocked`` (stage image) in every API and its webhook, and is refunded unless
the operator charges GPU time."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from accounts.helpers import Client, bearer
from accounts.test_webhooks import Receiver
from conftest import write_presets
from PIL import Image
from sqlalchemy import select

from safety.tiny_classifiers import build_image_classifier
from sticker_maker.db import files, ledger
from sticker_maker.errors import ContentBlocked
from sticker_maker.safety import ImageScreen, SafetySettings
from sticker_maker.worker.predictor import Predictor


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifiers")
    return {v: build_image_classifier(root / v, v) for v in ("nsfw", "normal")}


def test_the_image_screen_follows_the_model_and_the_level(classifiers) -> None:
    images = [Image.new("RGB", (64, 64), "white"), Image.new("RGBA", (48, 80))]
    flagging = ImageScreen.from_settings(SafetySettings(image_model=str(classifiers["nsfw"])))
    clearing = ImageScreen.from_settings(SafetySettings(image_model=str(classifiers["normal"])))
    assert flagging is not None and flagging.flagged(images) == [True, True]
    assert clearing is not None and clearing.flagged(images) == [False, False]
    # the threshold is the operator's: a label must score at least it
    assert ImageScreen.from_settings(SafetySettings(image_model=None)) is None

    predictor = Predictor()
    predictor.setup_safety(
        SafetySettings(image_model=str(classifiers["nsfw"]), charge_blocked_images=True)
    )
    lines: list[str] = []
    for level in ("standard", "strict", None):  # None: a job admitted before safety existed
        with pytest.raises(ContentBlocked) as refused:
            predictor.screen(images, level, lines.append)
        assert refused.value.stage == "image" and refused.value.charged
    for level in ("relaxed", "off"):  # no image check at these levels
        predictor.screen(images, level, lines.append)
    assert len(lines) == 3 and all("image check: 2 image(s)" in line for line in lines)


def _service(  # type: ignore[no-untyped-def]
    make_client, tiny_models, tmp_path: Path, model: Path, *, charge: bool = False, **settings
) -> Client:
    """The service with its worker on the tiny SDXL presets and ``model`` as image check."""
    return make_client(
        run_worker=True,
        presets=write_presets(tmp_path / "presets.toml", tiny_models),
        safety=SafetySettings(image_model=str(model), charge_blocked_images=charge),
        **settings,
    )


def _wait(client: Client, ids: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not all(client.svc.jobs.get(i).status.is_terminal for i in ids):
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.1)


def _image_metric(client: Client) -> float:
    admin = client.svc.keys.create(scope="admin").secret  # /metrics on the API port
    text = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    found = re.search(r'sticker_maker_content_blocked_total{stage="image"} (\S+)', text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_a_refused_image_never_reaches_storage_and_every_api_says_so(
    make_client, tiny_models, tmp_path, classifiers
) -> None:
    receiver = Receiver(fail_first=0)
    client = _service(
        make_client,
        tiny_models,
        tmp_path,
        classifiers["nsfw"],
        run_background=True,  # the webhook sender
        webhook_allow_networks=("127.0.0.1/32",),
    )
    stored: list[str] = []
    put = client.svc.storage.put
    client.svc.storage.put = lambda name, data: (stored.append(name), put(name, data))[1]
    refused_before = _image_metric(client)
    standard, relaxed = client.new_key(credits=1000), client.new_key(credits=1000, safety="relaxed")

    blocked = client.submit(
        standard, preset="tiny", prompt="a cute cat", steps=2, webhook=receiver.url
    ).json()["id"]
    allowed = client.submit(relaxed, preset="tiny", prompt="a cute cat", steps=2).json()["id"]
    _wait(client, [blocked, allowed])

    envelope = client.get(f"/v1/jobs/{blocked}", headers=bearer(standard)).json()
    assert envelope["status"] == "failed" and envelope["output"] == []
    assert envelope["error_code"] == "content_blocked" and envelope["error_stage"] == "image"
    assert "refunded" in envelope["error"] and "image check: 1 image(s)" in envelope["logs"]
    # the image never reached storage: the only files written are the relaxed job's
    kept = client.get(f"/v1/jobs/{allowed}", headers=bearer(relaxed)).json()
    assert kept["status"] == "succeeded", kept["error"]
    assert sorted(stored) == sorted(o["url"].rsplit("/", 1)[1] for o in kept["output"])
    with client.svc.db.read() as conn:
        assert conn.execute(select(files).where(files.c.job_id == blocked)).first() is None
        kinds = [r.kind for r in conn.execute(select(ledger).where(ledger.c.job_id == blocked))]
    assert sorted(kinds) == ["refund", "reserve"]  # a refused image costs nothing
    assert client.svc.keys.balance(standard.split("_")[1]) == pytest.approx(1000)

    segmind = client.get(f"/v2/requests/{blocked}/status", headers={"x-api-key": standard})
    assert segmind.status_code == 422 and segmind.json()["status"] == "FAILED"
    result = client.get(f"/v2/requests/{blocked}", headers={"x-api-key": standard})
    assert result.status_code == 422 and "content policy" in result.json()["error"]
    seed = client.get(f"/api/v1/result?tid={blocked}", headers={"apikey": standard}).json()
    assert seed["data"]["status"] == "failed" and seed["data"]["output"] == []
    assert _image_metric(client) == refused_before + 1

    receiver.wait_for(1)
    event = json.loads(receiver.requests[0][2])
    assert event["type"] == "job.completed" and event["data"]["output"] == []
    assert event["data"]["error_code"] == "content_blocked"
    assert event["data"]["error_stage"] == "image"
    receiver.server.shutdown()


@pytest.mark.slow
def test_an_operator_may_charge_the_gpu_time_of_a_refused_image(
    make_client, tiny_models, tmp_path, classifiers
) -> None:
    client = _service(make_client, tiny_models, tmp_path, classifiers["nsfw"], charge=True)
    key = client.new_key(credits=1000)
    job_id = client.submit(key, preset="tiny", prompt="a cute cat", steps=2).json()["id"]
    _wait(client, [job_id])
    job = client.svc.jobs.get(job_id)
    assert job.error_code == "content_blocked" and "charged" in (job.error or "")
    with client.svc.db.read() as conn:
        settle = conn.execute(
            select(ledger).where(ledger.c.job_id == job_id, ledger.c.kind == "settle")
        ).first()
    assert settle is not None and -settle.amount > 0 and "refused" in settle.note
    assert client.svc.keys.balance(key.split("_")[1]) == pytest.approx(1000 + settle.amount)


@pytest.mark.slow
def test_an_image_the_classifier_clears_is_kept(
    make_client, tiny_models, tmp_path, classifiers
) -> None:
    client = _service(make_client, tiny_models, tmp_path, classifiers["normal"])
    key = client.new_key(credits=1000)
    job_id = client.submit(key, preset="tiny", prompt="a cute cat", steps=2, samples=2).json()["id"]
    _wait(client, [job_id])
    job = client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).json()
    assert job["status"] == "succeeded" and len(job["output"]) == 4
    assert job["error_code"] is None and "image check: 2 image(s)" in job["logs"]
