"""A worker pod's termination grace period covers its SIGTERM drain.

The manifests give the worker ``--drain-timeout 45`` and a grace period of 75 s. Here a
real ``sticker-maker worker`` (tiny model, SQLite) gets SIGTERM mid-job with a short
drain timeout and a job far longer than it, the worst case: the job is cancelled at its
next step and handed back. The time it takes past the drain timeout, added to the
manifests' drain timeout, must fit their grace period, or Kubernetes would SIGKILL the
worker before the job is back in the queue (then it would wait for its lease to expire).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from scale.cluster import Cluster
from waiting import wait_for

from fleet.manifests import find, flag, kubectl, render
from sticker_maker.accounts import KeyStore
from sticker_maker.db import Database
from sticker_maker.jobs import JobStatus, JobStore
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets
from sticker_maker.worker.runner import HAND_BACK_SECONDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.heavy,
    pytest.mark.skipif(kubectl() is None, reason="kubectl not installed (dev extra)"),
]
DRAIN = 2.0


def test_worker_drain_ends_within_the_grace_period(tmp_path: Path, presets_file: Path) -> None:
    spec = find(render("base"), "Deployment", "sticker-maker-worker")["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    manifest_drain = float(flag(spec["containers"][0]["args"], "drain-timeout"))

    url = f"sqlite:///{tmp_path / 'state.db'}"
    db = Database(url)
    db.upgrade()
    store = JobStore(db)
    key = KeyStore(db).create(credits=1_000_000).key.id
    request = GenerationRequest(prompt="cat", preset="tiny", steps=100, width=256, height=256)
    cluster = Cluster(
        tmp_path / "cluster",
        presets_file,
        url,
        storage_url=str(tmp_path / "files"),
        env={"OMP_NUM_THREADS": "1", "STICKER_MAKER_POLL_INTERVAL": "0.2"},
    )
    try:
        worker = cluster.worker("drainer", "--drain-timeout", str(DRAIN))
        job = store.submit(key, resolve(request, load_presets(presets_file)))
        wait_for("the job to make progress", lambda: store.get(job.id).progress_step >= 2)
        running = store.get(job.id)
        assert running.status is JobStatus.RUNNING
        sent = time.monotonic()
        worker.send(signal.SIGTERM)
        wait_for("the worker to exit", lambda: worker.process.poll() is not None, 120)
        took = time.monotonic() - sent
        assert worker.process.returncode == 0, worker.log.read_text()[-2000:]
    finally:
        cluster.close()
    back = store.get(job.id)
    # the worst case happened: the job outlived the drain and was handed back, unbilled
    assert back.status is JobStatus.QUEUED and back.attempt == 0, back
    assert back.progress_step == 0 and "handed back" in back.logs
    past_drain = took - DRAIN
    print(
        f"drain: SIGTERM → exit {took:.2f}s with --drain-timeout {DRAIN:g}s "
        f"(+{past_drain:.2f}s to hand back); manifests: drain {manifest_drain:g}s + "
        f"{past_drain:.2f}s ≤ grace {grace}s"
    )
    assert 0 <= past_drain <= HAND_BACK_SECONDS
    assert manifest_drain + past_drain <= grace
    db.dispose()
