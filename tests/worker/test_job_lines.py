"""Logs an operator can read: one line per job start and end, and whole error messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sticker_maker.accounts import KeyStore
from sticker_maker.db import Database
from sticker_maker.engine.loading import _reason
from sticker_maker.jobs import JobStore
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets
from sticker_maker.storage import open_storage
from sticker_maker.worker.record import Recorder, job_line


def test_one_line_per_job_start_and_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.upgrade()
    store = JobStore(db)
    key = KeyStore(db).create(credits=100).key.id
    request = GenerationRequest(prompt="cat", preset="sticker-maker")
    ok, bad = (store.submit(key, resolve(request, load_presets())) for _ in range(2))
    recorder = Recorder(store, open_storage(None, tmp_path / "files"))
    caplog.set_level(logging.INFO, logger="sticker_maker")
    for _ in (ok, bad):
        claimed = store.claim_next("w1")
        assert claimed is not None
        job_line(claimed, "started")
        if claimed.id == ok.id:
            recorder.finish(claimed, [], 1.5)
        else:
            recorder.end(claimed, "failed", "NaN pixels: try a fp16-fix VAE", 0.25)
    lines = [r.getMessage() for r in caplog.records if r.name == "sticker_maker.worker"]
    assert lines == [
        f"job {ok.id} started kind=generate preset=sticker-maker seconds=-",
        f"job {ok.id} succeeded kind=generate preset=sticker-maker seconds=1.50s",
        f"job {bad.id} started kind=generate preset=sticker-maker seconds=-",
        f"job {bad.id} failed kind=generate preset=sticker-maker seconds=0.25s: "
        "NaN pixels: try a fp16-fix VAE",
    ]
    assert caplog.records[-1].levelno == logging.WARNING
    db.dispose()


def test_a_hub_failure_reason_is_kept_whole() -> None:
    words = " ".join(f"word{n}" for n in range(80))  # ~560 characters on one line
    reason = _reason(OSError(f"{words}\nsecond line"))
    assert reason == f" (OSError: {words})"
