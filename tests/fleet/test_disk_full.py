"""A full disk, for real: the service's home (SQLite + files) on a small tmpfs, filled up.

* reads (polls, lists, downloads, the account) keep answering 200, although every
  authenticated request counts against the key's rate limit (a database write);
* writes answer 503 with ``Retry-After`` in each API's own envelope;
* ``/health`` and ``/ready`` stay 200 (``"disk": "full"``);
* when space returns, writes work again by themselves;
* a worker whose outputs cannot be written sends the job back to the queue (attempt
  not used), then completes it once there is room, billed once.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from fleet.disk import fill, small_disk
from fleet.server import serving
from sticker_maker.config import Settings
from sticker_maker.db import ledger
from sticker_maker.jobs import JobStatus, OutputFile

pytestmark = pytest.mark.slow


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, format="PNG")
    return out.getvalue()


def test_full_disk_keeps_reads_and_refuses_writes_until_space_returns(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        settings = Settings.load(disk / "home", requests_per_minute=100_000)
        with serving(settings, run_worker=False) as (url, app):
            svc = app.state.services
            key = svc.keys.create(credits=1000).secret
            auth = {"Authorization": f"Bearer {key}"}
            job_id = httpx.post(f"{url}/v1/jobs", json={"prompt": "cat"}, headers=auth).json()["id"]
            # a worker's result, written before the disk fills
            job = svc.jobs.claim_next("w")
            svc.storage.put(name := "A" * 32 + ".png", png())
            output = OutputFile(file=name, kind="image", index=0, seed=1, width=64, height=64)
            assert svc.jobs.complete(job, [output], 1.0)

            filler = fill(disk)
            for _ in range(6):  # several rate-counter flushes (every 0.25 s) fail meanwhile
                r = httpx.get(f"{url}/v1/jobs/{job_id}", headers=auth)
                assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
                time.sleep(0.3)
            assert httpx.get(f"{url}/v1/jobs", headers=auth).status_code == 200
            assert httpx.get(f"{url}/v1/account", headers=auth).status_code == 200
            file_url = r.json()["output"][0]["url"]
            got = httpx.get(file_url, headers=auth)
            assert got.status_code == 200 and got.content == png()
            assert httpx.get(f"{url}/health").status_code == 200
            ready = httpx.get(f"{url}/ready")
            assert ready.status_code == 200 and ready.json()["disk"] == "full", ready.text

            r = httpx.post(f"{url}/v1/jobs", json={"prompt": "dog"}, headers=auth)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "30"
            assert r.json()["error"]["code"] == "unavailable"
            assert "disk is full" in r.json()["error"]["message"]
            seed = httpx.post(
                f"{url}/api/v1/generate",
                json={"mid": 3123, "input": {"prompt": "dog"}},
                headers={"apikey": key},
            )
            assert seed.status_code == 503 and seed.json()["code"] == 503, seed.text
            assert seed.headers["retry-after"] == "30"

            freed = time.monotonic()
            filler.unlink()
            while True:
                r = httpx.post(f"{url}/v1/jobs", json={"prompt": "dog"}, headers=auth)
                if r.status_code != 503:
                    break
                assert time.monotonic() - freed < 30, r.text
                time.sleep(0.05)
            recovered = time.monotonic() - freed
            assert r.status_code == 201, r.text
            print(f"disk full (API): writes back {recovered:.2f}s after space returned")


@pytest.mark.heavy
def test_a_job_whose_outputs_cannot_be_written_goes_back_and_completes(
    tmp_path: Path, presets_file: Path
) -> None:
    with small_disk(tmp_path / "files", "4m") as files:
        settings = Settings.load(
            tmp_path / "home", presets=presets_file, storage=str(files), poll_interval=0.2
        )
        with serving(settings, run_worker=True) as (url, app):
            svc = app.state.services
            key = svc.keys.create(credits=1000)
            auth = {"Authorization": f"Bearer {key.secret}"}
            filler = fill(files)
            r = httpx.post(f"{url}/v1/jobs", json={"prompt": "cat", "preset": "tiny"}, headers=auth)
            job_id = r.json()["id"]
            deadline = time.monotonic() + 120
            while "could not be written" not in svc.jobs.get(job_id).logs:
                assert time.monotonic() < deadline, svc.jobs.get(job_id)
                time.sleep(0.05)
            back = svc.jobs.get(job_id)
            assert back.status is JobStatus.QUEUED and back.attempt == 0, back
            assert app.state.worker.recorder.outputs_refused == 1
            assert sorted(p.name for p in files.rglob("*") if p.is_file()) == ["filler"]

            freed = time.monotonic()
            filler.unlink()
            while not svc.jobs.get(job_id).status.is_terminal:
                assert time.monotonic() - freed < 120
                time.sleep(0.05)
            recovered = time.monotonic() - freed
            done = svc.jobs.get(job_id)
            assert done.status is JobStatus.SUCCEEDED and done.attempt == 1, done
            for output in done.output:
                assert svc.storage.get(output.file).startswith(b"\x89PNG")
            with svc.db.read() as conn:
                kinds = sorted(
                    conn.execute(select(ledger.c.kind).where(ledger.c.job_id == job_id)).scalars()
                )
            assert kinds.count("settle") == 1, kinds  # billed once
            print(
                f"disk full (worker): job handed back, completed {recovered:.2f}s after space "
                f"returned (claims pause {10:g}s); jobs lost 0, billed twice 0"
            )
