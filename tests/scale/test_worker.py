"""`sticker-maker worker` processes on PostgreSQL: NOTIFY wake-up, SIGTERM drain and hand-back,
the worker registry and the worker's own /metrics."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from waiting import wait_for

from scale.cluster import Cluster, Proc, free_port
from sticker_maker.accounts import KeyStore
from sticker_maker.db import Database
from sticker_maker.jobs import Job, JobStatus, JobStore
from sticker_maker.jobs.workers import WorkerRegistry
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


@pytest.fixture
def cluster(tmp_path: Path, presets_file: Path, pg_url: str) -> Iterator[Cluster]:
    running = Cluster(
        tmp_path / "cluster",
        presets_file,
        pg_url,
        storage_url=str(tmp_path / "files"),
        env={
            "STICKER_MAKER_LEASE_TIMEOUT": "10",
            "STICKER_MAKER_HEARTBEAT_INTERVAL": "1",
            "OMP_NUM_THREADS": "1",
        },
    )
    yield running
    running.close()


def test_worker_lifecycle(cluster: Cluster, presets_file: Path) -> None:
    db = Database(cluster.database_url)
    db.upgrade()
    store, registry = JobStore(db), WorkerRegistry(db)
    presets = load_presets(presets_file)
    key = KeyStore(db).create(credits=1_000_000).key.id

    def submit(steps: int) -> Job:
        request = GenerationRequest(prompt="cat", preset="tiny", steps=steps, seed=3)
        return store.submit(key, resolve(request, presets))

    def state(worker: str) -> str | None:
        return next((w.state for w in registry.all() if w.id == worker), None)

    def finished(job_id: str) -> Job | None:
        job = store.get(job_id)
        return job if job.status.is_terminal else None

    def acted_on_sigterm(worker: str) -> None:
        """Wait for the worker's second "draining" beat. The first may be written by the loop
        pass the signal interrupted, before it looked at the drain deadline; every later
        pass looks first (and, past the deadline, has asked the running jobs to stop)."""

        def beat() -> float | None:
            info = next((w for w in registry.all() if w.id == worker), None)
            return info.heartbeat_at if info and info.state == "draining" else None

        first = wait_for(f"{worker} draining", beat)
        wait_for(f"{worker}'s next beat", lambda: (beat() or 0) > first)

    def running(job_id: str) -> bool:
        return store.get(job_id).status is JobStatus.RUNNING

    def stopped(proc: Proc) -> int | None:
        return proc.process.poll()

    try:
        # 1. SIGTERM with --drain-timeout 0: the running job goes back to the queue,
        #    with its attempt given back, and the worker leaves the registry. The model
        #    process gets the SIGTERM too and leaves stopping to the worker.
        #    The model process is frozen before the job reaches it, so the job cannot end
        #    before the signal lands: it resumes only once the worker has asked the job to
        #    stop, and stops at its first step.
        b = cluster.worker("worker-b", "--drain-timeout", "0")
        wait_for("worker-b idle", lambda: state("worker-b") == "idle")
        b_model = b.model_pid()
        os.kill(b_model, signal.SIGSTOP)
        long_job = submit(steps=60)
        wait_for("worker-b to claim the job", lambda: running(long_job.id))
        os.killpg(b.process.pid, signal.SIGTERM)  # the whole group, as systemd does by default
        acted_on_sigterm("worker-b")
        os.kill(b_model, signal.SIGCONT)
        wait_for("worker-b to exit", lambda: stopped(b) is not None, 30)
        assert b.process.returncode == 0, b.log.read_text()[-2000:]
        back = store.get(long_job.id)
        assert back.status is JobStatus.QUEUED and back.attempt == 0, back
        assert "handed back" in back.logs
        assert state("worker-b") is None

        # 2. A new worker that polls only every 60 s (x5 on PostgreSQL) picks up the handed-back
        #    job on start and, woken by NOTIFY, a new job at once.
        port = free_port()
        a = cluster.worker("worker-a", "--poll-interval", "60", "--metrics-port", str(port))
        done = wait_for("the handed-back job", lambda: finished(long_job.id), 180)
        assert done.status is JobStatus.SUCCEEDED and done.attempt == 1, done.error
        wait_for("worker-a idle", lambda: state("worker-a") == "idle")
        time.sleep(1.0)  # idle, waiting on LISTEN
        t0 = time.monotonic()
        quick = submit(steps=2)
        result = wait_for("the NOTIFY-woken job", lambda: finished(quick.id), 60)
        assert result.status is JobStatus.SUCCEEDED
        assert time.monotonic() - t0 < 60  # a poll would have taken 300 s

        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert _value(metrics, "sticker_maker_queue_wait_seconds_count") >= 2
        assert _value(metrics, "sticker_maker_predict_seconds_count") >= 2
        assert _value(metrics, "sticker_maker_gpu_seconds_billed_total") > 0
        assert _value(metrics, "sticker_maker_worker_heartbeats_total") > 0
        assert _value(metrics, 'sticker_maker_jobs_finished_total{status="succeeded"}') >= 2

        # 3. SIGTERM with the default drain: the running job is finished, not handed back.
        #    Again the model process holds the job until the worker is draining.
        a_model = a.model_pid()
        os.kill(a_model, signal.SIGSTOP)
        drained = submit(steps=4)
        wait_for("worker-a to claim the job", lambda: running(drained.id))
        a.send(signal.SIGTERM)
        acted_on_sigterm("worker-a")
        assert store.get(drained.id).status is JobStatus.RUNNING
        os.kill(a_model, signal.SIGCONT)
        wait_for("worker-a to exit", lambda: stopped(a) is not None, 60)
        assert a.process.returncode == 0, a.log.read_text()[-2000:]
        end = store.get(drained.id)
        assert end.status is JobStatus.SUCCEEDED and end.attempt == 1 and end.output
    finally:
        db.dispose()


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")
