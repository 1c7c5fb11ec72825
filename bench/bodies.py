"""API memory under many large request bodies at once, with and without the in-flight cap.

    python bench/bodies.py [--clients 30] [--mib 8]

Starts ``sticker-maker serve --no-worker`` twice: once with the cap on bodies in flight
off (``STICKER_MAKER_MAX_BODIES_IN_FLIGHT_BYTES=0``, the service before this limit) and
once with its default (64 MiB). Each time ``--clients`` threads send one body of
``--mib`` MiB at once (a JSON job whose prompt is too long: read in full, then refused
with 400), retrying after ``Retry-After`` when told 503. Prints the server's resident
memory before, its peak (``VmHWM``), how many 503s were answered and the time until
every client had its answer. No model is loaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run(cap: int | None, clients: int, mib: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="sticker-maker-bench-bodies-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "STICKER_MAKER_HOME": str(home),
        "STICKER_MAKER_REQUESTS_PER_MINUTE": "0",
    }
    if cap is not None:
        env["STICKER_MAKER_MAX_BODIES_IN_FLIGHT_BYTES"] = str(cap)
    key = subprocess.run(
        [sys.executable, "-m", "sticker_maker", "keys", "create", "--credits", "10"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sticker_maker", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.get(f"{url}/v1/account", headers={"Authorization": f"Bearer {key}"})
        before = _status_kib(server.pid, "VmRSS")
        body = b'{"prompt": "' + b"a" * (mib * 1024 * 1024 - 64) + b'"}'
        statuses: list[int] = []
        busy = [0]
        lock = threading.Lock()
        go = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=120) as http:
                go.wait()
                while True:
                    r = http.post(
                        f"{url}/v1/jobs",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {key}",
                            "Content-Type": "application/json",
                        },
                    )
                    if r.status_code != 503:
                        with lock:
                            statuses.append(r.status_code)
                        return
                    with lock:
                        busy[0] += 1
                    time.sleep(float(r.headers.get("retry-after", "1")))

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        started = time.monotonic()
        go.set()
        for t in threads:
            t.join()
        seconds = time.monotonic() - started
        peak = _status_kib(server.pid, "VmHWM")
        return {
            "cap": "off" if cap == 0 else f"{(cap or 64 * 1024 * 1024) // (1024 * 1024)} MiB",
            "rss_before_mb": before / 1024,
            "peak_rss_mb": peak / 1024,
            "answers": sorted(set(statuses)),
            "answered_503": busy[0],
            "seconds": seconds,
        }
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--mib", type=int, default=8, help="body size (MiB; the limit is 8)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{args.clients} concurrent bodies of {args.mib} MiB to one API process")
    print("| cap on bodies in flight | RSS before | peak RSS | 503s answered | all answered in |")
    print("|---|---|---|---|---|")
    for cap in (0, None):
        r = run(cap, args.clients, args.mib)
        print(
            f"| {r['cap']} | {r['rss_before_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB | "
            f"{r['answered_503']} | {r['seconds']:.1f} s (answers {r['answers']}) |"
        )


if __name__ == "__main__":
    main()
