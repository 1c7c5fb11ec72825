"""The model process's side of continuous batching, driven through its pipe: a ``join``
during a batch adds jobs at the next step, one of another key waits for the loop to
end, and a ``join`` that comes after the batch ended starts a batch of its own."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import TinyModels, write_presets
from devices import TEST_DEVICE, TEST_DTYPE

from sticker_maker.params import parse_request, resolve
from sticker_maker.presets import load_presets

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _item(presets: Any, slot: int, job_id: str, **fields: Any) -> tuple[Any, ...]:
    body = {"preset": "tiny", "prompt": job_id, "seed": 3, "steps": 4, **fields}
    job = resolve(parse_request(body), presets)
    return (slot, job_id, "generate", job.model_dump_json(), None)


def _until_batch_end(parent: Any) -> list[tuple[Any, ...]]:
    messages = []
    while True:
        assert parent.poll(120), messages
        message = parent.recv()
        messages.append(message)
        if message[0] == "batch_end":
            return messages


def _ends(messages: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    return [(m[1], m[2][0]) for m in messages if m[0] == "job" and m[2][0] != "progress"]


def test_joins_during_and_after_a_batch(tiny_models: TinyModels, tmp_path: Path) -> None:
    from sticker_maker.worker.child import child_main

    path = write_presets(tmp_path / "presets.toml", tiny_models)
    presets = load_presets(path)
    parent, child = mp.Pipe()
    flags = bytearray(8)
    config = {
        "presets_file": str(path),
        "engine_options": {"device": TEST_DEVICE, "dtype": TEST_DTYPE},
    }
    thread = threading.Thread(
        target=child_main, args=(child, threading.Event(), config, flags), daemon=True
    )
    thread.start()
    try:
        assert parent.recv() == ("ready",)
        # 1. A job; once it is denoising, a second one of its key and one of another.
        parent.send(("batch", 1, [_item(presets, 0, "long", steps=20)]))
        first = parent.recv()
        while first[0] != "job" or first[2][0] != "progress":
            first = parent.recv()
        parent.send(("join", 2, [_item(presets, 1, "short", steps=20)]))
        parent.send(("join", 3, [_item(presets, 2, "wider", width=72)]))
        messages = _until_batch_end(parent)
        done = [m for m in _ends(messages) if m[1] != "log"]
        assert done == [("long", "done"), ("short", "done"), ("wider", "done")], done
        assert messages[-1] == ("batch_end", 3)
        # the second job joined the running loop (its steps came before the first's end);
        # the one of another key (width) ran after the loop
        at = {
            (m[1], m[2][0], m[2][1] if m[2][0] == "progress" else 0): n
            for n, m in enumerate(messages)
            if m[0] == "job"
        }
        assert at[("short", "progress", 1)] < at[("long", "done", 0)]
        assert at[("short", "progress", 20)] < at[("wider", "progress", 1)]
        # 2. A join when no batch runs starts one of its own.
        parent.send(("join", 4, [_item(presets, 0, "late")]))
        messages = _until_batch_end(parent)
        assert [m for m in _ends(messages) if m[1] != "log"] == [("late", "done")]
        assert messages[-1] == ("batch_end", 4)
        # 3. A cancel flag stops only its own job of the loop.
        parent.send(
            ("batch", 5, [_item(presets, 0, "kept", steps=12), _item(presets, 1, "gone", steps=12)])
        )
        flags[1] = 1
        messages = _until_batch_end(parent)
        ends = dict(m for m in _ends(messages) if m[1] != "log")
        assert ends == {"kept": "done", "gone": "canceled"}
    finally:
        parent.send(("stop",))
        thread.join(10)
