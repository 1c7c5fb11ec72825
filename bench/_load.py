"""A small HTTP/1.1 load generator for the benchmarks (asyncio, keep-alive, raw sockets).

Runs in its own process so the client's CPU time is not the server's: on a 2-core
machine, an ``httpx`` client in the server's process would halve what it can serve.
Raw ``asyncio`` streams cost a few tens of µs per request, so the client is never
the bottleneck at a few thousand requests per second.

    python bench/_load.py URL KEY polls JOB_ID SECONDS CONNECTIONS
    python bench/_load.py URL KEY submits SECONDS CONNECTIONS
    python bench/_load.py URL KEY jobs N CONCURRENCY

Prints one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

JOB_BODY = {"preset": "tiny", "prompt": "cute cat", "width": 64, "height": 64, "steps": 4}


class Conn:
    """One keep-alive connection."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", extra: str = ""
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\napikey: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length) if length else b""
        return status, data


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _for_seconds(url: str, key: str, seconds: float, connections: int, call: Any) -> dict:
    host, port = _split(url)
    conns = [Conn(host, port, key) for _ in range(connections)]
    for c in conns:
        await c.open()
    counts = {"ok": 0, "bad": 0}
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop(c: Conn) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await call(c)
            latencies.append(time.perf_counter() - started)
            counts["ok" if status < 300 else "bad"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": counts["ok"],
        "errors": counts["bad"],
        "seconds": elapsed,
        "per_second": counts["ok"] / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


async def polls(url: str, key: str, job_id: str, seconds: float, connections: int) -> dict:
    """GET ``/v1/jobs/{job_id}`` (or ``job_id`` itself when it starts with a slash)."""
    path = job_id if job_id.startswith("/") else f"/v1/jobs/{job_id}"

    async def call(c: Conn) -> int:
        return (await c.request("GET", path))[0]

    return await _for_seconds(url, key, seconds, connections, call)


async def submits(url: str, key: str, seconds: float, connections: int) -> dict:
    body = json.dumps(JOB_BODY).encode()

    async def call(c: Conn) -> int:
        return (await c.request("POST", "/v1/jobs", body))[0]

    return await _for_seconds(url, key, seconds, connections, call)


async def jobs(url: str, key: str, n: int, concurrency: int) -> dict:
    """``concurrency`` users, each submitting with ``Prefer: wait`` until ``n`` jobs ran."""
    host, port = _split(url)
    body = json.dumps(JOB_BODY).encode()
    rows: list[dict] = []
    left = [n]
    failures: list[str] = []

    async def user() -> None:
        c = Conn(host, port, key)
        await c.open()
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            status, data = await c.request("POST", "/v1/jobs", body, "Prefer: wait=60\r\n")
            wall = time.perf_counter() - started
            job = json.loads(data)
            if status >= 300 or job.get("status") != "succeeded":
                failures.append(f"{status} {data[:200]!r}")
                continue
            m = job["metrics"]
            rows.append({**m, "wall": wall})

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"rows": rows, "seconds": elapsed, "failures": failures[:5], "failed": len(failures)}


def main(argv: list[str]) -> None:
    url, key, mode, *rest = argv
    if mode == "polls":
        result = asyncio.run(polls(url, key, rest[0], float(rest[1]), int(rest[2])))
    elif mode == "submits":
        result = asyncio.run(submits(url, key, float(rest[0]), int(rest[1])))
    elif mode == "jobs":
        result = asyncio.run(jobs(url, key, int(rest[0]), int(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
