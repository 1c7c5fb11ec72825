"""README claim: a client that hangs up on a Segmind sync call cancels its job.

A real client over a real socket to the real server (``shared_server``, its worker
running the job): the request is sent, the job is seen running, the socket is closed,
and the job ends ``canceled`` part-way instead of running to its last step.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import RunningServer
from waiting import wait_for

pytestmark = pytest.mark.slow

SLUG = "Norod78-SDXL-StickerSheet-Lora"
#: the most steps a Segmind call may ask for: the job runs long after it is seen running
STEPS = 100


def test_hanging_up_on_a_sync_call_cancels_its_job(shared_server: RunningServer) -> None:
    key = shared_server.new_key(credits=500)
    auth = {"Authorization": f"Bearer {key}"}
    body = json.dumps(
        {
            "prompt": "a cat that waits",
            "num_inference_steps": STEPS,
            "img_width": 64,
            "img_height": 64,
            "scheduler": "Euler",
            "seed": 1,
        }
    ).encode()
    address = urlsplit(shared_server.url)
    request = (
        f"POST /v1/{SLUG} HTTP/1.1\r\nHost: {address.netloc}\r\nx-api-key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    def running() -> dict | None:
        jobs = httpx.get(f"{shared_server.url}/v1/jobs?limit=1", headers=auth).json()["jobs"]
        job = jobs[0] if jobs else None
        return job if job and job["status"] == "running" and job["progress"]["step"] else None

    with socket.create_connection((address.hostname, address.port)) as client:
        client.sendall(request)
        job = wait_for("the sync call's job to run", running, 120)
        client.settimeout(0)
        with pytest.raises(BlockingIOError):
            client.recv(1)  # nothing answered yet: the call is still waiting for its job
    # the socket is closed: the client has hung up

    def ended() -> dict | None:
        now = httpx.get(f"{shared_server.url}/v1/jobs/{job['id']}", headers=auth).json()
        return now if now["status"] in ("succeeded", "failed", "canceled") else None

    final = wait_for("the job to end", ended, 120)
    assert final["status"] == "canceled", final  # not run to its last step
    assert final["progress"]["step"] < final["progress"]["total"] == STEPS
