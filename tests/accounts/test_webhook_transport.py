"""What the webhook sender's transport promises (README "Webhooks"): proxies in the
environment are ignored, at most 64 KiB of an answer is read, TLS verifies the URL's host
name although the connection goes to a checked address, and a 410 stops the retries."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from accounts.helpers import Client
from sticker_maker.accounts import webhook_sender
from sticker_maker.accounts.webhook_sender import MAX_RESPONSE_BYTES, post

from .test_webhooks import LOCAL, Receiver, deliveries

ALLOW = ("127.0.0.1/32",)


class Server:
    """A local receiver answering 200; ``endless`` streams an answer that never ends."""

    def __init__(self, *, endless: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.hits = 0
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.hits += 1
                self.send_response(200)
                if not endless:
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    return
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()  # no length: the body ends when the connection does
                try:
                    while outer.sent < 100 * MAX_RESPONSE_BYTES:
                        self.wfile.write(b"x" * 4096)
                        outer.sent += 4096
                except OSError:
                    pass  # the sender hung up
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_environment_proxies_are_ignored(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a proxy that refuses every connection
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = f"http://127.0.0.1:{server.port}/hook"
    assert post(url, {}, b"{}", allow_networks=ALLOW) == 200
    assert server.hits == 1


def test_an_endless_answer_is_read_only_up_to_64_kib() -> None:
    server = Server(endless=True)
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            post(f"http://127.0.0.1:{server.port}/hook", {}, b"{}", allow_networks=ALLOW)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(60)  # had it read the whole answer, it would still be reading
    server.close()
    assert not thread.is_alive() and result == [200]
    assert server.sent < 100 * MAX_RESPONSE_BYTES  # it hung up long before the end
    assert MAX_RESPONSE_BYTES == 64 * 1024


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_verifies_the_host_name_not_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _certificate(tmp_path, "good.test")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = Server(tls=tls)
    # both names resolve to the local receiver; only one is on its certificate
    real = socket.getaddrinfo

    def local(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host.endswith(".test") else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local)
    trust = ssl.create_default_context(cafile=str(cert))  # this test's CA, nothing else
    monkeypatch.setattr(webhook_sender.httpx, "Client", partial(httpx.Client, verify=trust))
    try:
        good = f"https://good.test:{server.port}/hook"
        assert post(good, {}, b"{}", allow_networks=ALLOW) == 200
        with pytest.raises(httpx.ConnectError, match=r"(?i)hostname|match"):
            post(f"https://evil.test:{server.port}/hook", {}, b"{}", allow_networks=ALLOW)
        assert server.hits == 1
    finally:
        server.close()


def test_a_410_stops_the_retries(make_client) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(fail_first=0, status=410)
    client: Client = make_client(webhook_max_attempts=8, **LOCAL)
    key = client.new_key()
    client.submit(key, webhook=receiver.url)
    client.run_next()
    receiver.wait_for(1)
    deadline = time.monotonic() + 15
    while deliveries(client)[0]["status"] == "pending" and deliveries(client)[0]["attempts"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    row = deliveries(client)[0]
    # failed for good after one attempt: a failed delivery is never claimed again
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 1, "HTTP 410")
    receiver.server.shutdown()
