"""Service overhead: what the service adds on top of the model, and how fast its API answers.

    python bench/overhead.py [--jobs 40] [--seconds 3] [--max-batch N] [--levels 1,8,32]

Starts ``sticker-maker serve`` with the tiny model (64x64, 4 steps) and drives it from a
separate load-generator process (``bench/_load.py``: asyncio over raw keep-alive sockets,
so the client does not eat the server's CPU):

* overhead = total_time - predict_time of each job (the server's own timings: queueing,
  claiming, handing to the model process, storing, completing), p50/p95/p99, with
  1, 8 and 32 users each submitting one job at a time with ``Prefer: wait=60``;
  and the throughput in jobs/s at each level;
* submissions/s and polls/s (``GET /v1/jobs/{id}``) from one API process with no worker
  (``--no-worker``, so the model does not share the CPU), 16 connections.

Limits are lifted (requests per minute very high but still counted, so its cost stays in);
the model process uses one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _tiny import tiny_presets  # noqa: E402

#: the server's environment: limits lifted (requests still counted), one torch thread (the
#: tiny model gains nothing from more, and on a busy 2-core machine OpenMP threads spin
#: against each other: predict_time then varies 0.1-1 s for the same job)
LIMITS = {
    "OMP_NUM_THREADS": "1",
    "STICKER_MAKER_REQUESTS_PER_MINUTE": "1000000000",
    "STICKER_MAKER_SUBMITS_PER_MINUTE": "0",
    "STICKER_MAKER_MAX_ACTIVE_JOBS": "0",
    "STICKER_MAKER_MAX_QUEUE_DEPTH": "0",
}


def _load(url: str, key: str, *args: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "_load.py"), url, key, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _server(home: Path, *extra: str) -> Any:
    from conftest import start_server  # type: ignore[import-not-found]

    saved = dict(os.environ)
    os.environ.update(LIMITS)
    try:
        return start_server(home, tiny_presets(), *extra)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def job_overhead(
    levels: tuple[int, ...] = (1, 8, 32), jobs: int = 40, max_batch: int | None = None
) -> list[dict[str, Any]]:
    """Per concurrency level: overhead percentiles (ms) and jobs/s."""
    from conftest import stop_server  # type: ignore[import-not-found]

    extra = ("--max-batch", str(max_batch)) if max_batch else ()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        server = _server(Path(tmp) / "home", *extra)
        try:
            key = server.new_key(credits=1e9)
            _load(server.url, key, "jobs", 4, 1)  # warm-up: model load, caches
            for level in levels:
                n = max(jobs, 3 * level)
                r = _load(server.url, key, "jobs", n, level)
                rows = r["rows"]
                over = [1000 * (x["total_time"] - x["predict_time"]) for x in rows]
                out.append(
                    {
                        "concurrency": level,
                        "jobs": len(rows),
                        "failed": r["failed"],
                        "p50_ms": _pct(over, 0.50),
                        "p95_ms": _pct(over, 0.95),
                        "p99_ms": _pct(over, 0.99),
                        "queue_p50_ms": 1000 * statistics.median(x["queue_time"] for x in rows),
                        "predict_p50_ms": 1000 * statistics.median(x["predict_time"] for x in rows),
                        "jobs_per_s": len(rows) / r["seconds"],
                    }
                )
        finally:
            stop_server(server)
    return out


def api_throughput(seconds: float = 3.0, connections: int = 16) -> dict[str, Any]:
    """Submissions/s and polls/s of one API process without a worker."""
    from conftest import stop_server  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as tmp:
        server = _server(Path(tmp) / "home", "--no-worker")
        try:
            key = server.new_key(credits=1e12)
            job = httpx.post(
                f"{server.url}/v1/jobs",
                headers={"apikey": key},
                json={"preset": "tiny", "prompt": "a cat", "width": 64, "height": 64, "steps": 4},
            ).json()
            _load(server.url, key, "polls", job["id"], 0.5, connections)  # warm-up
            polls = _load(server.url, key, "polls", job["id"], seconds, connections)
            submits = _load(server.url, key, "submits", seconds, connections)
        finally:
            stop_server(server)
    return {"polls": polls, "submits": submits}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs per level (≥ 3x the level)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    parser.add_argument("--max-batch", type=int, default=None, help="serve --max-batch")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels")
    args = parser.parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("job overhead = total_time - predict_time (ms), tiny model 64x64 4 steps")
    for r in job_overhead(levels, args.jobs, args.max_batch):
        print(
            f"  c={r['concurrency']:<3} p50 {r['p50_ms']:7.1f}  p95 {r['p95_ms']:7.1f}  "
            f"p99 {r['p99_ms']:7.1f}   queue p50 {r['queue_p50_ms']:7.1f}  "
            f"predict p50 {r['predict_p50_ms']:6.1f}   {r['jobs_per_s']:6.1f} jobs/s"
            + (f"  ({r['failed']} failed)" if r["failed"] else "")
        )
    t = api_throughput(args.seconds)
    for name in ("submits", "polls"):
        x = t[name]
        print(
            f"  {name:8s} {x['per_second']:8.0f}/s   p50 {x['p50_ms']:6.1f} ms  "
            f"p99 {x['p99_ms']:6.1f} ms  ({x['errors']} errors)"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
