"""Webhooks: Standard Webhooks signatures, retries under one webhook-id, SSRF rules."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from accounts.helpers import Client, bearer
from sticker_maker.accounts import webhooks
from sticker_maker.accounts.webhook_sender import DeliveryRefused, WebhookSender, resolve_checked
from sticker_maker.db import webhook_deliveries

LOCAL = {"webhook_allow_networks": ("127.0.0.1/32",), "webhook_backoff": 0.2}


class Receiver:
    """A local HTTP receiver that answers the first ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 1, status: int = 200, location: str | None = None):
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first, self.status, self.location = fail_first, status, location
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else receiver.status)
                if receiver.location and not failing:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} deliveries arrived"
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def deliveries(client: Client) -> list[dict]:
    with client.svc.db.read() as conn:
        return [dict(r) for r in conn.execute(select(webhook_deliveries)).mappings()]


def test_signed_events_and_a_retry_keeps_the_webhook_id(make_client, receiver) -> None:
    client: Client = make_client(**LOCAL)
    key = client.new_key()
    secret = client.get("/v1/account", headers=bearer(key)).json()["webhook_secret"]
    job = client.submit(
        key, webhook=receiver.url, webhook_events_filter=["start", "completed"]
    ).json()
    client.run_next(predict_time=1.25)
    receiver.wait_for(3)  # start (failed once, retried) + completed, in some order
    time.sleep(0.3)
    ids = [h["webhook-id"] for _, h, _ in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 2, ids
    retried = ids[0]
    assert ids.count(retried) == 2  # the first delivery failed and came again, same id
    bodies = {}
    for path, headers, body in receiver.requests:
        assert path == "/hook"
        assert webhooks.verify(secret, headers, body)
        assert not webhooks.verify(secret, {**headers, "webhook-id": "msg_other"}, body)
        assert headers["webhook-signature"].startswith("v1,")
        bodies.setdefault(headers["webhook-id"], set()).add(body)
    assert all(len(b) == 1 for b in bodies.values())  # identical bytes on every attempt
    events = {json.loads(next(iter(b)))["type"]: json.loads(next(iter(b))) for b in bodies.values()}
    assert set(events) == {"job.start", "job.completed"}
    done = events["job.completed"]["data"]
    assert done["id"] == job["id"] and done["status"] == "succeeded"
    assert done["metrics"]["predict_time"] == 1.25 and len(done["output"]) == 2
    assert events["job.start"]["data"]["status"] == "running"
    rows = deliveries(client)
    assert sorted(r["status"] for r in rows) == ["delivered", "delivered"]
    assert sorted(r["attempts"] for r in rows) == [1, 2]


def test_default_filter_is_completed_and_failed_jobs_notify_too(make_client) -> None:
    receiver = Receiver(fail_first=0)
    client: Client = make_client(**LOCAL)
    key = client.new_key()
    client.submit(key, webhook=receiver.url)
    client.run_next(fail="out of memory")
    receiver.wait_for(1)
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    event = json.loads(receiver.requests[0][2])
    assert event["type"] == "job.completed" and event["data"]["status"] == "failed"
    assert event["data"]["error"] == "out of memory"
    receiver.server.shutdown()


def test_progress_events_are_throttled(make_client) -> None:
    client: Client = make_client(run_background=False, **LOCAL)
    key = client.new_key()
    client.submit(key, webhook="http://127.0.0.1:9/x", webhook_events_filter=["progress"])
    job = client.svc.jobs.claim_next("w")
    for step in range(1, 5):
        assert client.svc.jobs.record_progress(job, step, 4)
    assert [r["event"] for r in deliveries(client)] == ["progress"]


def test_outbox_survives_a_restart(make_client, tmp_path) -> None:
    receiver = Receiver(fail_first=0)
    home = tmp_path / "restart"
    first: Client = make_client(home=home, run_background=False, **LOCAL)
    key = first.new_key()
    first.submit(key, webhook=receiver.url)
    first.run_next()
    assert [r["status"] for r in deliveries(first)] == ["pending"]
    make_client(home=home, **LOCAL)  # a new process with the sender running
    receiver.wait_for(1)
    receiver.server.shutdown()


def test_link_local_metadata_address_is_refused(make_client) -> None:
    client: Client = make_client(**LOCAL)  # 127.0.0.1 is allowed, 169.254.0.0/16 is not
    key = client.new_key()
    for url in ("http://169.254.169.254/latest/meta-data", "http://[::ffff:169.254.169.254]/"):
        r = client.submit(key, webhook=url)
        assert r.status_code == 400, r.text
        field = r.json()["error"]["fields"][0]
        assert field["field"] == "webhook" and "link-local" in field["message"]
    assert client.get("/v1/jobs", headers=bearer(key)).json()["jobs"] == []
    # and the sender refuses it without connecting, even if a row got there another way
    sender = WebhookSender(client.svc.db, lambda row, root: {}, allow_networks=("127.0.0.1/32",))
    row = {
        "id": "msg_x",
        "url": "http://169.254.169.254/",
        "attempts": 0,
        "payload": json.dumps({"type": "job.completed", "timestamp": 0, "job": {}}),
        "secret": "whsec_" + "A" * 44,
    }
    assert sender.attempt(row) == "failed"


def test_private_addresses_are_refused_unless_allowed(make_client) -> None:
    client: Client = make_client()
    key = client.new_key()
    for url in ("http://127.0.0.1:8000/x", "http://10.1.2.3/x", "http://[::1]/x"):
        assert client.submit(key, webhook=url).status_code == 400
    for url in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url", "http://"):
        r = client.submit(key, webhook=url)
        assert r.status_code == 400 and r.json()["error"]["fields"][0]["field"] == "webhook"
    r = client.submit(key, webhook="https://example.com/x", webhook_events_filter=["logs"])
    assert r.status_code == 400


def test_dns_answers_are_checked_every_address(monkeypatch) -> None:
    answers = {
        "metadata.test": ["169.254.169.254"],
        "mixed.test": ["93.184.216.34", "10.0.0.5"],
        "public.test": ["93.184.216.34"],
    }

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    for host in ("metadata.test", "mixed.test"):
        with pytest.raises(DeliveryRefused):
            resolve_checked(host, 80)
    assert resolve_checked("public.test", 443) == ["93.184.216.34"]
    assert resolve_checked("metadata.test", 80, ["169.254.0.0/16"]) == ["169.254.169.254"]


def test_redirects_are_not_followed(make_client) -> None:
    receiver = Receiver(fail_first=0, status=302, location="/elsewhere")
    client: Client = make_client(webhook_max_attempts=1, **LOCAL)
    key = client.new_key()
    client.submit(key, webhook=receiver.url)
    client.run_next()
    receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while deliveries(client)[0]["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = deliveries(client)[0]
    assert row["status"] == "failed" and row["last_error"] == "HTTP 302"
    assert [p for p, _, _ in receiver.requests] == ["/hook"]
    receiver.server.shutdown()
