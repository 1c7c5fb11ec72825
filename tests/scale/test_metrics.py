"""``/metrics`` from the database, and the scale-out settings."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from scale.cluster import free_port
from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.db import workers
from sticker_maker.errors import InvalidInput
from sticker_maker.jobs.workers import WorkerRegistry
from sticker_maker.params import GenerationRequest, resolve


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in:\n{text}")


def test_metrics_count_jobs_and_workers_from_the_database(
    tmp_path: Path, presets_file: Path
) -> None:
    port = free_port()
    settings = Settings.load(
        tmp_path / "home", presets=presets_file, lease_timeout=30, metrics_port=port
    )
    app = create_app(settings, run_worker=False)
    with TestClient(app) as client:
        svc = app.state.services
        key = svc.keys.create(credits=1000).key.id
        for i in range(3):
            request = GenerationRequest(prompt=f"cat {i}", preset="tiny")
            svc.jobs.submit(key, resolve(request, svc.presets))
        assert svc.jobs.claim_next("w-busy") is not None
        registry = WorkerRegistry(svc.db)
        registry.beat("w-busy", "busy", None, 4)
        registry.beat("w-gone", "idle", None, 0)
        with svc.db.write() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == "w-gone")
                .values(heartbeat_at=time.time() - 120)
            )

        # on the API port: only with an admin key
        assert client.get("/metrics").status_code == 401
        user = {"Authorization": f"Bearer {svc.keys.create(credits=0).secret}"}
        assert client.get("/metrics", headers=user).status_code == 403
        admin = {"Authorization": f"Bearer {svc.keys.create(scope='admin').secret}"}
        r = client.get("/metrics", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert metric(r.text, 'sticker_maker_jobs{status="queued"}') == 2
        # on the metrics port (serve --metrics-port): the same, without a key
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert metric(text, "sticker_maker_database_up") == 1
        assert metric(text, 'sticker_maker_jobs{status="queued"}') == 2
        assert metric(text, 'sticker_maker_jobs{status="running"}') == 1
        assert metric(text, 'sticker_maker_jobs{status="succeeded"}') == 0
        assert metric(text, "sticker_maker_queue_depth") == 2
        assert metric(text, "sticker_maker_queue_oldest_age_seconds") >= 0
        assert metric(text, 'sticker_maker_workers{state="busy"}') == 1
        assert metric(text, 'sticker_maker_workers{state="lost"}') == 1
        assert metric(text, 'sticker_maker_worker_heartbeat_age_seconds{worker="w-gone"}') > 100
        # this process's own metrics follow (histograms exist even before any job ran here)
        assert "sticker_maker_queue_wait_seconds_bucket" in text
        assert "sticker_maker_gpu_seconds_billed_total" in text


def test_scale_settings_from_keywords_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STICKER_MAKER_LEASE_TIMEOUT", "12")
    monkeypatch.setenv("STICKER_MAKER_STORAGE", "s3://outputs?endpoint=http://minio:9000")
    settings = Settings.load(tmp_path, heartbeat_interval=4)
    assert settings.lease_timeout == 12 and settings.heartbeat_interval == 4
    assert settings.storage_url == "s3://outputs?endpoint=http://minio:9000"
    assert Settings.load(tmp_path, storage="/srv/files").storage_url == "/srv/files"

    with pytest.raises(InvalidInput, match="shorter than lease_timeout") as info:
        Settings.load(tmp_path, heartbeat_interval=12)
    assert info.value.errors[0].field == "heartbeat_interval"
    monkeypatch.setenv("STICKER_MAKER_MAX_ATTEMPTS", "three")
    with pytest.raises(InvalidInput, match="STICKER_MAKER_MAX_ATTEMPTS"):
        Settings.load(tmp_path)
    monkeypatch.setenv("STICKER_MAKER_MAX_ATTEMPTS", "0")
    with pytest.raises(InvalidInput, match="greater than 0"):
        Settings.load(tmp_path)
