"""Helpers for the accounts tests: a TestClient that can play the worker."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from sticker_maker.api.services import Services
from sticker_maker.jobs import Job, OutputFile
from sticker_maker.storage import new_file_name


class Client(TestClient):
    svc: Services

    def new_key(self, credits: float = 1000, **kwargs: Any) -> str:
        return self.svc.keys.create(credits=credits, **kwargs).secret

    def submit(self, key: str, **fields: Any) -> Any:
        body = {"preset": "sticker-maker", "prompt": "cute cat", "width": 64, "height": 64}
        return self.post("/v1/jobs", headers=bearer(key), json={**body, **fields})

    def run_next(self, predict_time: float = 1.0, *, fail: str | None = None) -> Job:
        """Play the worker: claim the oldest queued job and finish it (with real PNG files)."""
        job = self.svc.jobs.claim_next("test-worker")
        assert job is not None, "nothing queued"
        if fail is not None:
            assert self.svc.jobs.fail(job, fail, predict_time)
            return self.svc.jobs.get(job.id)
        outputs = []
        for kind in ("image", "sticker"):
            name = new_file_name("png")
            self.svc.storage.put(name, PNG)
            outputs.append(OutputFile(name, kind, 0, job.input.seed, 64, 64))
        assert self.svc.jobs.complete(job, outputs, predict_time)
        return self.svc.jobs.get(job.id)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


def assert_balance_is_ledger_sum(client: Client, secret: str) -> float:
    """The balance kept on the key equals the sum of its ledger rows."""
    from sticker_maker.accounts.keys import balance_of, ledger_sum

    key_id = secret.split("_")[1]
    with client.svc.db.read() as conn:
        kept, summed = balance_of(conn, key_id), ledger_sum(conn, key_id)
    assert abs(kept - summed) < 1e-9, (kept, summed)
    return kept


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
