"""How long a synchronous request waits beyond its job: Segmind ``POST /v1/<model>``,
native ``Prefer: wait``, the Replicate-compatible ``Prefer: wait`` (raw HTTP and the real
``replicate`` client's ``run``), and the Segmind client's submit + poll for comparison.

Starts ``sticker-maker serve`` on the tiny models (``bench/_tiny.py``),
runs N jobs each way and prints the median and worst overhead: the request's wall
time minus the job's own ``total_time`` (queue + compute + storing), i.e. the
time spent noticing that the job had finished and answering.

    python bench/sync_wait.py [N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _tiny import tiny_presets

FAST = {"num_inference_steps": 4, "img_width": 64, "img_height": 64}


def main(n: int) -> None:
    from conftest import start_server, stop_server  # type: ignore[import-not-found]

    presets = tiny_presets()
    home = Path(tempfile.mkdtemp(prefix="sm-bench-")) / "home"
    server = start_server(home, presets, "--sync-timeout", "300")  # a busy machine is slow
    try:
        key = server.new_key()
        h = {"x-api-key": key}
        with httpx.Client(base_url=server.url, headers=h, timeout=300) as http:
            http.post("/v1/tiny", json={"prompt": "warm-up", **FAST})
            rows = {
                "segmind sync POST /v1/tiny": [_segmind_sync(http) for _ in range(n)],
                "native Prefer: wait=60": [_prefer_wait(http) for _ in range(n)],
                "replicate Prefer: wait=60": [_replicate_wait(http) for _ in range(n)],
                "replicate client run()": [_replicate_run(server.url, key) for _ in range(n)],
                "segmind v2 poll every 1.0 s": [_v2_poll(http, 1.0) for _ in range(n)],
            }
    finally:
        stop_server(server)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{n} jobs each, tiny model 64x64, 4 steps; overhead = wall - job total_time (ms)")
    print(f"  machine: {os.cpu_count()} CPUs, load average before the run's end: {load}")
    for name, values in rows.items():
        ms = sorted(v * 1000 for v in values)
        print(f"  {name:30s} median {statistics.median(ms):7.1f}   max {ms[-1]:7.1f}")


def _segmind_sync(http: httpx.Client) -> float:
    started = time.perf_counter()
    r = http.post("/v1/tiny", json={"prompt": "a cat", **FAST})
    wall = time.perf_counter() - started
    r.raise_for_status()
    total = http.get(f"/v2/requests/{r.headers['x-request-id']}").json()["metrics"]["total_time"]
    return wall - total


def _prefer_wait(http: httpx.Client) -> float:
    started = time.perf_counter()
    r = http.post(
        "/v1/jobs", json={"preset": "tiny", "prompt": "a cat"}, headers={"Prefer": "wait=60"}
    )
    wall = time.perf_counter() - started
    job = r.json()
    assert job["status"] == "succeeded", job
    return wall - job["metrics"]["total_time"]


def _replicate_wait(http: httpx.Client) -> float:
    started = time.perf_counter()
    r = http.post(
        "/v1/models/sticker-maker/tiny/predictions",
        json={"input": {"prompt": "a cat"}},
        headers={"Prefer": "wait=60", "authorization": f"Bearer {http.headers['x-api-key']}"},
    )
    wall = time.perf_counter() - started
    prediction = r.json()
    assert prediction["status"] == "succeeded", prediction
    return wall - prediction["metrics"]["total_time"]


def _replicate_run(url: str, key: str) -> float:
    """The real client: create with ``Prefer: wait`` (its default), then read the metrics."""
    import replicate

    client = replicate.Client(api_token=key, base_url=url)
    started = time.perf_counter()
    prediction = client.models.predictions.create(
        model="sticker-maker/tiny", input={"prompt": "a cat"}, wait=True
    )
    if prediction.status not in ("succeeded", "failed", "canceled"):
        prediction.wait()
    wall = time.perf_counter() - started
    assert prediction.status == "succeeded", prediction
    assert prediction.metrics is not None
    return wall - prediction.metrics["total_time"]


def _v2_poll(http: httpx.Client, interval: float) -> float:
    started = time.perf_counter()
    rid = http.post("/v2/tiny", json={"prompt": "a cat", **FAST}).json()["request_id"]
    while http.get(f"/v2/requests/{rid}/status").json()["status"] != "COMPLETED":
        time.sleep(interval)
    body = http.get(f"/v2/requests/{rid}").json()
    return time.perf_counter() - started - body["metrics"]["total_time"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10, help="jobs each way")
    main(parser.parse_args().n)
