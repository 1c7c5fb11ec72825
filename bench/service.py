"""Submit → completion through a real server with the tiny model, split into overhead and predict.

    python bench/service.py [--jobs 20] [--steps 4]

Starts ``sticker-maker serve`` on a free port (tiny sticker model, 64x64), submits jobs one
at a time through the sticker-maker-compatible API and reports the server's own timings:
total_time (created → completed), predict_time (model work), queue_time (created → started)
and overhead = total - predict.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _tiny import tiny_presets


def run(jobs: int = 20, steps: int = 4) -> dict[str, float]:
    from conftest import start_server, stop_server  # type: ignore[import-not-found]

    presets = tiny_presets()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "home", presets)
        try:
            key = server.new_key(credits=1e9)
            headers = {"apikey": key}
            body = {
                "mid": 3123,
                "input": {"prompt": "cute cat", "width": 64, "height": 64, "steps": steps},
            }
            rows = []
            with httpx.Client(base_url=server.url, headers=headers) as client:
                for i in range(jobs + 1):  # the first job warms the model up; not counted
                    tid = client.post("/api/v1/generate", json=body).json()["data"]["tid"]
                    while True:
                        data = client.get("/api/v1/result", params={"tid": tid}).json()["data"]
                        if data["status"] in ("succeeded", "failed", "canceled"):
                            break
                        time.sleep(0.002)
                    assert data["status"] == "succeeded", data
                    native = client.get(f"/v1/jobs/{tid}").json()["metrics"]
                    if i:
                        rows.append(
                            (data["total_time"], data["predict_time"], native["queue_time"])
                        )
        finally:
            stop_server(server)
    total = statistics.median(r[0] for r in rows)
    predict = statistics.median(r[1] for r in rows)
    return {
        "jobs": jobs,
        "total_ms": total * 1000,
        "predict_ms": predict * 1000,
        "queue_ms": statistics.median(r[2] for r in rows) * 1000,
        "overhead_ms": statistics.median(r[0] - r[1] for r in rows) * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(argv)
    r = run(args.jobs, args.steps)
    print(f"submit→completion, tiny model 64x64, {args.steps} steps, median of {r['jobs']} jobs")
    print(f"  total      {r['total_ms']:8.1f} ms")
    print(f"  predict    {r['predict_ms']:8.1f} ms")
    print(f"  overhead   {r['overhead_ms']:8.1f} ms  (total - predict)")
    print(f"    of which queue wait {r['queue_ms']:6.1f} ms  (created -> started)")


if __name__ == "__main__":
    main()
