"""What accounts cost per request: authenticated polls and submits, with and without
the per-request rate counter and the submit admission (limits + credit reservation).

In-process (FastAPI TestClient, SQLite in a temp folder), one thread; prints
requests per second and milliseconds per request. Run from the repository root:

    PYTHONPATH=. python bench/accounts.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from sticker_maker.api import create_app
from sticker_maker.config import Settings


def rate(client: TestClient, method: str, path: str, seconds: float, **kwargs) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        r = client.request(method, path, **kwargs)
        assert r.status_code < 300, r.text
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    unlimited = {"submits_per_minute": 0, "max_active_jobs": 0, "max_queue_depth": 0}
    for label, counter in (("rate counter on ", 10**9), ("rate counter off", 0)):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings.load(Path(tmp), requests_per_minute=counter, **unlimited)
            app = create_app(settings, run_worker=False, run_background=False)
            svc = app.state.services
            with TestClient(app) as client:
                key = svc.keys.create(credits=1e12).secret
                h = {"Authorization": f"Bearer {key}"}
                job = client.post("/v1/jobs", headers=h, json={"prompt": "x"}).json()
                poll = rate(client, "GET", f"/v1/jobs/{job['id']}", args.seconds, headers=h)
                body = {"prompt": "cute cat", "width": 64, "height": 64}
                submit = rate(client, "POST", "/v1/jobs", args.seconds, headers=h, json=body)
                svc.jobs.admission = None  # no limits, no reservation
                bare = rate(client, "POST", "/v1/jobs", args.seconds, headers=h, json=body)
            print(
                f"{label}: poll {poll:7.0f} req/s ({1000 / poll:.2f} ms) | "
                f"submit with admission {submit:6.0f} req/s ({1000 / submit:.2f} ms) | "
                f"without {bare:6.0f} req/s ({1000 / bare:.2f} ms)"
            )
    store_level(args.seconds)


def per_call(fn, seconds: float) -> float:
    """Milliseconds per call of ``fn``, median of five runs."""
    runs = []
    for _ in range(5):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            fn()
            done += 1
        runs.append((time.perf_counter() - start) * 1000 / done)
    return sorted(runs)[2]


def store_level(seconds: float) -> None:
    """The database work alone: the rate counter, and a submit with and without admission."""
    from sticker_maker.accounts.limits import count_request
    from sticker_maker.api.services import Services
    from sticker_maker.params import GenerationRequest, resolve

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            Path(tmp),
            requests_per_minute=10**9,
            submits_per_minute=0,
            max_active_jobs=0,
            max_queue_depth=0,
        )
        svc = Services.build(settings)
        new = svc.keys.create(credits=1e12)
        job = resolve(GenerationRequest(prompt="x", width=64, height=64), svc.presets)
        counter = per_call(lambda: count_request(svc.db, new.key, settings), seconds)
        auth = per_call(lambda: svc.keys.authenticate(new.secret), seconds)
        admitted = per_call(lambda: svc.jobs.submit(new.key.id, job), seconds)
        svc.jobs.admission = None
        bare = per_call(lambda: svc.jobs.submit(new.key.id, job), seconds)
        svc.db.dispose()
    print(
        f"store level: authenticate {auth:.3f} ms | rate counter {counter:.3f} ms | "
        f"submit with admission {admitted:.3f} ms, without {bare:.3f} ms"
    )


if __name__ == "__main__":
    main()
