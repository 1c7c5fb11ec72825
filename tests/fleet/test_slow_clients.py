"""Slow and abusive clients, over raw sockets against a real uvicorn server.

* a request that declares a body and never sends it, or stops half-way, is answered
  408 after ``body_timeout`` without data, and its connection is closed;
* a body dripped a byte at a time is cut off at the overall deadline;
* the bytes of bodies in flight are capped: past the cap a new body is refused at once
  with 503 and ``Retry-After`` before any of it is read, and it is let in once the others
  are done.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from fleet.server import body_limit, serving
from sticker_maker.api.body_limit import BODY_DEADLINE_FACTOR
from sticker_maker.config import Settings

TIMEOUT = 1.0


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def send_head(sock: socket.socket, length: int, path: str = "/v1/jobs") -> None:
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
    )


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed): reads until the server closes or 30 s pass."""
    data = b""
    closed = False
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            closed = True
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if _ and b"content-length:" in head.lower():
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
            if len(body) >= int(headers["content-length"]) and headers.get("connection") != "close":
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body, closed


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        tmp_path / "home",
        body_timeout=TIMEOUT,
        max_bodies_in_flight_bytes=3 * 1024 * 1024,
    )


def test_a_body_that_never_arrives_is_cut_off(settings: Settings) -> None:
    with serving(settings, run_worker=False, run_background=False) as (url, _app):
        # 1. declared, never sent
        sock = connect(url)
        started = time.monotonic()
        send_head(sock, 1000)
        status, headers, body, closed = read_response(sock)
        waited = time.monotonic() - started
        sock.close()
        assert status == 408 and headers["connection"] == "close" and closed
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert TIMEOUT * 0.9 <= waited < TIMEOUT + 5, waited
        # 2. half sent, then silence
        sock = connect(url)
        send_head(sock, 1000)
        sock.sendall(b'{"prompt": "' + b"a" * 400)
        status, _, body, closed = read_response(sock)
        sock.close()
        assert status == 408 and closed and b"412 of 1000 bytes" in body
        # 3. dripped: a byte every half timeout never trips the idle limit, the deadline cuts it
        sock = connect(url)
        started = time.monotonic()
        send_head(sock, 10_000)
        sock.settimeout(TIMEOUT / 2)
        answer = b""
        while time.monotonic() - started < TIMEOUT * BODY_DEADLINE_FACTOR + 10:
            try:
                sock.sendall(b" ")
                answer = sock.recv(65536)
                if answer:
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        waited = time.monotonic() - started
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert TIMEOUT * BODY_DEADLINE_FACTOR * 0.9 <= waited < TIMEOUT * BODY_DEADLINE_FACTOR + 5
        print(
            f"slow body: cut off after {waited:.2f}s (deadline {TIMEOUT * BODY_DEADLINE_FACTOR:g}s)"
        )


def test_bodies_in_flight_are_capped(settings: Settings) -> None:
    big = 2 * 1024 * 1024
    with serving(settings, run_worker=False, run_background=False) as (url, app):
        holder = connect(url)
        send_head(holder, big)
        holder.sendall(b"{" + b" " * 1000)  # 2 MiB reserved, arriving slowly
        time.sleep(0.3)
        limiter = body_limit(app)
        assert limiter.in_flight == big
        # a second 2 MiB body would pass the 3 MiB cap: refused before a byte is read
        second = connect(url)
        started = time.monotonic()
        send_head(second, big)
        status, headers, body, closed = read_response(second)
        second.close()
        assert status == 503 and headers["retry-after"] == "1" and closed
        assert time.monotonic() - started < TIMEOUT  # at once, not after a timeout
        assert json.loads(body)["error"]["code"] == "service_busy"
        # a small one still fits
        small = connect(url)
        payload = json.dumps({"prompt": "cat"}).encode()
        send_head(small, len(payload))
        small.sendall(payload)
        status, _, _, _ = read_response(small)
        small.close()
        assert status == 401  # read, then refused for want of a key: it was let in
        # the holder finishes its body: its bytes leave the count, and a 2 MiB body fits again
        holder.sendall(b" " * (big - 1002) + b"}")
        status, _, _, _ = read_response(holder)
        holder.close()
        assert status in (400, 401)
        assert limiter.in_flight == 0
        again = connect(url)
        send_head(again, big)
        again.sendall(b" " * big)
        status, _, _, _ = read_response(again)
        again.close()
        assert status in (400, 401)
        assert limiter.peak_in_flight <= 3 * 1024 * 1024
