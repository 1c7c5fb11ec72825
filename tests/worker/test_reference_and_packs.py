"""Reference jobs and packs in the worker: the model process takes a ``pack`` like a
``generate`` job (batched, with its reference picture as the upload bytes), and the
recorder tags a pack's stickers with their expression and emoji."""

from __future__ import annotations

import io
import multiprocessing as mp
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyModels, write_presets
from devices import TEST_DEVICE, TEST_DTYPE

from sticker_maker.params import Expression, Reference, parse_request, resolve
from sticker_maker.presets import load_presets

pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")
pytestmark = pytest.mark.slow

EXPRESSIONS = (
    Expression(name="happy", emoji="😀", prompt="happy, smiling"),
    Expression(name="sad", emoji="😢", prompt="sad, crying"),
    Expression(name="love", emoji="😍", prompt="in love, hearts"),
)


def _png(array: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def presets_path(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared test presets: ``face-to-sticker`` on the tiny model and IP-Adapter."""
    assert tiny_models.ip_adapter is not None
    root = tmp_path_factory.mktemp("worker-reference")
    return write_presets(root / "presets.toml", tiny_models)


def _job(presets: Any, pack: bool) -> str:
    job = resolve(
        parse_request({"preset": "face-to-sticker", "prompt": "a person", "seed": 4}), presets
    )
    update: dict[str, Any] = {
        "reference": Reference(image="me.png", ip_adapter_weight=0.6, ip_adapter_noise=0.5)
    }
    if pack:
        update |= {"expressions": EXPRESSIONS, "samples": len(EXPRESSIONS)}
    return job.model_copy(update=update).model_dump_json()


def test_a_pack_and_a_reference_job_share_the_model_process_batch(presets_path: Path) -> None:
    from sticker_maker.worker.child import child_main

    presets = load_presets(presets_path)
    face = _png(skimage_data.astronaut())
    parent, child = mp.Pipe()
    config = {
        "presets_file": str(presets_path),
        "engine_options": {"device": TEST_DEVICE, "dtype": TEST_DTYPE},
    }
    thread = threading.Thread(
        target=child_main, args=(child, threading.Event(), config, bytearray(4)), daemon=True
    )
    thread.start()
    try:
        assert parent.recv() == ("ready",)
        items = [
            (0, "pack", "pack", _job(presets, pack=True), face, None),
            (1, "one", "generate", _job(presets, pack=False), face, None),
        ]
        parent.send(("batch", 1, items))
        messages = []
        while True:
            assert parent.poll(120), messages
            message = parent.recv()
            messages.append(message)
            if message[0] == "batch_end":
                break
        done = {m[1]: m[2] for m in messages if m[0] == "job" and m[2][0] == "done"}
        assert set(done) == {"pack", "one"}, messages
        assert len(done["pack"][1]) == 3 and len(done["one"][1]) == 1
        assert {s.seed for s in done["pack"][1]} == {4}
        logs = [m[2][1] for m in messages if m[0] == "job" and m[2][0] == "log"]
        assert any("in a batch of up to 2 jobs" in line for line in logs), logs
        assert any("face found in the picture" in line for line in logs), logs
    finally:
        parent.send(("stop",))
        thread.join(30)


def test_the_recorder_tags_a_packs_stickers_with_expression_and_emoji(tmp_path: Path) -> None:
    from PIL import Image

    from sticker_maker.accounts import KeyStore
    from sticker_maker.db import Database
    from sticker_maker.jobs import JobStore
    from sticker_maker.storage import open_storage
    from sticker_maker.worker.predictor import sticker_output
    from sticker_maker.worker.record import Recorder

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    store = JobStore(db)
    key = KeyStore(db).create(credits=100).key.id
    job = resolve(parse_request({"prompt": "a fox", "seed": 1}), load_presets())
    pack = job.model_copy(update={"expressions": EXPRESSIONS, "samples": 3})
    store.submit(key, pack, kind="pack")
    claimed = store.claim_next("w1")
    assert claimed is not None and claimed.kind == "pack"
    image = Image.new("RGB", (8, 8), "white")
    stickers = [sticker_output(image, image.convert("RGBA"), 1) for _ in EXPRESSIONS]
    Recorder(store, open_storage(None, tmp_path / "files")).finish(claimed, stickers, 1.0)
    outputs = store.get(claimed.id).output
    tags = [(o.index, o.kind, o.expression, o.emoji) for o in outputs if o.kind == "sticker"]
    assert tags == [
        (0, "sticker", "happy", "😀"),
        (1, "sticker", "sad", "😢"),
        (2, "sticker", "love", "😍"),
    ]
    assert all(o.to_dict()["expression"] for o in outputs)
    db.dispose()
