"""Chaos: real API and worker processes, 300 jobs, a worker and an API SIGKILLed mid-run.

* PostgreSQL + S3: 2 ``serve --no-worker`` + 3 ``worker`` processes.
* SQLite + a local folder: 2 ``serve --no-worker`` + 2 ``worker`` processes on one host.

Jobs go in concurrently through both APIs; a client whose API dies under it
retries on the other with the same ``Idempotency-Key``. One worker is SIGKILLed
while it holds a running job (frozen with SIGSTOP first, so the kill surely
lands mid-job), one API is SIGKILLed and restarted. Every job must end
succeeded exactly once, with one set of outputs and one settled ledger entry,
nothing lost and nothing billed twice.

Run ``pytest -m chaos -s`` to see the figures (jobs, kills, retries, duration).
"""

from __future__ import annotations

import io
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from waiting import wait_for

from scale.cluster import Cluster, Proc, SeaweedS3
from sticker_maker.accounts import KeyStore
from sticker_maker.db import Database, jobs, ledger
from sticker_maker.jobs import Job, JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.heavy]

JOBS = 300
ENV = {
    "STICKER_MAKER_LEASE_TIMEOUT": "5",
    "STICKER_MAKER_HEARTBEAT_INTERVAL": "1",
    "STICKER_MAKER_POLL_INTERVAL": "0.5",
    "STICKER_MAKER_DB_POOL_SIZE": "4",
    "OMP_NUM_THREADS": "1",
    # one key sends all 300 jobs: lift the per-key caps (0 = none); credits still apply
    "STICKER_MAKER_SUBMITS_PER_MINUTE": "0",
    "STICKER_MAKER_MAX_ACTIVE_JOBS": "0",
}
GRANT = 1_000_000.0


@dataclass
class Figures:
    jobs: int = 0
    submit_retries: int = 0
    worker_kills: list[str] = field(default_factory=list)  # ids of the jobs running at the kill
    api_kills: int = 0
    retried_jobs: int = 0
    max_attempt: int = 0
    orphans: int = 0
    seconds: float = 0.0

    def line(self, label: str) -> str:
        return (
            f"chaos[{label}]: {self.jobs} jobs in {self.seconds:.1f}s "
            f"({self.jobs / self.seconds:.1f} jobs/s); killed 1 worker mid-job "
            f"(jobs {', '.join(j[:8] for j in self.worker_kills)}) and {self.api_kills} API; "
            f"{self.submit_retries} submit retries, {self.retried_jobs} jobs ran more than once "
            f"(max attempt {self.max_attempt}), {self.orphans} orphan files"
        )


def all_jobs(db: Database) -> list[Job]:
    with db.read() as conn:
        return [Job.from_row(r) for r in conn.execute(select(jobs)).mappings()]


def running_on(db: Database, worker: str) -> list[str]:
    with db.read() as conn:
        query = select(jobs.c.id).where(
            jobs.c.status == JobStatus.RUNNING.value, jobs.c.worker_id == worker
        )
        return [str(i) for i in conn.execute(query).scalars()]


def kill_mid_job(db: Database, worker: Proc) -> list[str]:
    """SIGSTOP the worker; if it holds a running job, SIGKILL it, else let it go and retry.

    (The queue can run dry for a while: a submit whose first try died with the killed API
    is refused with 409 until its idempotency key goes stale, 60 s.)
    """
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        worker.send(signal.SIGSTOP)
        held = running_on(db, worker.name)
        if held:
            worker.send(signal.SIGKILL)
            worker.process.wait(10)
            return held
        worker.send(signal.SIGCONT)
        time.sleep(0.05)
    with db.read() as conn:
        seen = conn.execute(
            select(jobs.c.worker_id, jobs.c.status, func.count()).group_by(
                jobs.c.worker_id, jobs.c.status
            )
        ).all()
    raise AssertionError(f"{worker.name} never held a running job; jobs by worker: {seen}")


def run_chaos(cluster: Cluster, n_apis: int, n_workers: int, list_files: Callable[[], set[str]]):
    started = time.monotonic()
    figures = Figures()
    apis = [cluster.api(f"api{i}") for i in range(n_apis)]
    workers = [cluster.worker(f"chaos-w{i}") for i in range(n_workers)]
    db = Database(cluster.database_url, pool_size=2)
    try:
        for api in apis:
            cluster.wait_healthy(api)
        key = cluster.new_key(GRANT)
        key_id = KeyStore(db).authenticate(key).id

        def idle_workers() -> bool:
            with db.read() as conn:
                from sticker_maker.db import workers as table

                rows = conn.execute(select(table.c.id, table.c.state)).all()
            return sum(1 for _, state in rows if state == "idle") == n_workers

        wait_for("workers to be ready", idle_workers, 180, interval=0.2)
        t0 = time.monotonic()

        submitted: dict[int, str] = {}
        lock = threading.Lock()
        api_killed = threading.Event()

        def submit(i: int) -> None:
            body = {"preset": "tiny", "prompt": f"chaos job {i}", "steps": 2, "seed": i}
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"chaos-{i}"}
            deadline = time.monotonic() + 180
            for attempt in range(10_000):
                api = apis[(i + attempt) % n_apis]
                try:
                    r = httpx.post(f"{api.url}/v1/jobs", json=body, headers=headers, timeout=60)
                    if r.status_code == 201:
                        with lock:
                            submitted[i] = r.json()["id"]
                        return
                    if r.status_code == 200 and r.headers.get("Idempotent-Replayed"):
                        with lock:
                            submitted[i] = r.json()["id"]
                        return
                    # 409: the first try of this key is still in flight (or died in flight)
                    assert r.status_code in (409, 429, 500, 502, 503), r.text
                except httpx.TransportError:
                    pass
                with lock:
                    figures.submit_retries += 1
                assert time.monotonic() < deadline, f"job {i} could not be submitted"
                time.sleep(0.05)

        def chaos() -> None:
            wait_for(
                "a third of the submits", lambda: len(submitted) >= JOBS // 3, 120, interval=0.2
            )
            victim = apis[-1]
            victim.send(signal.SIGKILL)
            victim.process.wait(10)
            figures.api_kills += 1
            api_killed.set()
            time.sleep(1.0)
            restarted = cluster.restart(victim)
            apis[-1] = restarted
            cluster.wait_healthy(restarted)

        def succeeded() -> int:
            return sum(1 for j in all_jobs(db) if j.status is JobStatus.SUCCEEDED)

        failures: list[BaseException] = []

        def kill_worker() -> None:
            try:
                wait_for("30 jobs to succeed", lambda: succeeded() >= 30, 180, interval=0.2)
                figures.worker_kills = kill_mid_job(db, workers[0])
            except BaseException as exc:
                failures.append(exc)

        chaos_thread = threading.Thread(target=chaos, daemon=True)
        worker_thread = threading.Thread(target=kill_worker, daemon=True)
        chaos_thread.start()
        worker_thread.start()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(submit, range(JOBS)))
        worker_thread.join(240)
        if failures:
            raise failures[0]
        assert figures.worker_kills, "the worker was not killed"
        chaos_thread.join(180)
        assert api_killed.is_set()

        def settled() -> bool:
            rows = all_jobs(db)
            return len(rows) >= JOBS and all(j.status.is_terminal for j in rows)

        wait_for("every job to end", settled, 240, interval=0.2)
        figures.seconds = time.monotonic() - t0

        # -- every job succeeded exactly once ------------------------------------------
        rows = all_jobs(db)
        figures.jobs = len(rows)
        per_prompt = Counter(j.input.prompt for j in rows)
        assert len(rows) == JOBS, f"{len(rows)} jobs for {JOBS} submissions (duplicates or lost)"
        assert set(per_prompt.values()) == {1}
        assert sorted(submitted) == list(range(JOBS))
        assert {j.id for j in rows} == set(submitted.values())
        failed = [(j.id, j.error) for j in rows if j.status is not JobStatus.SUCCEEDED]
        assert not failed, failed[:5]
        for job in rows:
            assert len(job.output) == 2 and {o.kind for o in job.output} == {"image", "sticker"}
        figures.retried_jobs = sum(1 for j in rows if j.attempt > 1)
        figures.max_attempt = max(j.attempt for j in rows)
        assert figures.max_attempt <= 3
        # the job the worker died holding ran again elsewhere
        for job_id in figures.worker_kills:
            job = next(j for j in rows if j.id == job_id)
            assert job.attempt >= 2 and job.worker_id != workers[0].name
            assert "stopped sending heartbeats" in job.logs

        # -- one set of outputs per job, all stored ------------------------------------
        referenced = {o.file for j in rows for o in j.output}
        assert len(referenced) == 2 * JOBS
        stored = list_files()
        assert referenced <= stored, f"{len(referenced - stored)} outputs missing from storage"
        figures.orphans = len(stored - referenced)
        assert figures.orphans <= 2, "more orphan files than the killed worker could leave"

        # -- billed exactly once: one reserve, one refund, one settle per job -------------
        with db.read() as conn:
            entries = conn.execute(select(ledger.c.job_id, ledger.c.kind, ledger.c.amount)).all()
            prices = dict(conn.execute(select(jobs.c.id, jobs.c.price_per_second)).all())
        per_job = Counter((job_id, kind) for job_id, kind, _ in entries if job_id)
        for job in rows:
            counts = [per_job[(job.id, kind)] for kind in ("reserve", "refund", "settle")]
            assert counts == [1, 1, 1], (job.id, counts)
        settled = {job_id: -amount for job_id, kind, amount in entries if kind == "settle"}
        reserved = {job_id: -amount for job_id, kind, amount in entries if kind == "reserve"}
        for job in rows:
            charge = min((job.predict_time or 0.0) * float(prices[job.id] or 0.0), reserved[job.id])
            assert settled[job.id] == pytest.approx(charge, abs=1e-9)
        assert KeyStore(db).balance(key_id) == pytest.approx(GRANT - sum(settled.values()))
        assert len(settled) == JOBS

        # -- outputs are served by every API, the restarted one included -----------------
        headers = {"Authorization": f"Bearer {key}"}
        for i, job in enumerate(rows[:: JOBS // 10]):
            api = apis[i % n_apis]
            envelope = httpx.get(f"{api.url}/v1/jobs/{job.id}", headers=headers).json()
            assert envelope["status"] == "succeeded"
            r = httpx.get(envelope["output"][1]["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(r.content))
            assert image.size == (64, 64) and image.mode == "RGBA"
    finally:
        db.dispose()
        cluster.close()
    total = time.monotonic() - started
    label = cluster.database_url.split(":")[0]
    print(f"\n{figures.line(label)} (with start-up and checks {total:.0f}s)")
    return figures


def test_chaos_postgresql_s3(
    tmp_path: Path, presets_file: Path, pg_url: str, s3: SeaweedS3
) -> None:
    bucket = f"chaos-{uuid.uuid4().hex[:10]}"
    cluster = Cluster(
        tmp_path / "cluster", presets_file, pg_url, s3.url(bucket), env={**ENV, **s3.env}
    )

    def objects() -> set[str]:
        names: set[str] = set()
        for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            names.update(o["Key"] for o in page.get("Contents", []))
        return names

    figures = run_chaos(cluster, n_apis=2, n_workers=3, list_files=objects)
    assert figures.jobs == JOBS


def test_chaos_sqlite_one_host(tmp_path: Path, presets_file: Path) -> None:
    files = tmp_path / "files"
    cluster = Cluster(
        tmp_path / "cluster",
        presets_file,
        f"sqlite:///{tmp_path / 'state.db'}",
        str(files),
        env=ENV,
    )

    def stored() -> set[str]:
        return {p.name for p in files.rglob("*.png") if not p.name.startswith(".tmp")}

    figures = run_chaos(cluster, n_apis=2, n_workers=2, list_files=stored)
    assert figures.jobs == JOBS
