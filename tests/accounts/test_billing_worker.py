"""Billing with the real worker and the tiny model: measured predict_time x price, exactly."""

from __future__ import annotations

import time

import pytest
from conftest import write_presets

from accounts.helpers import Client, assert_balance_is_ledger_sum, bearer

pytestmark = pytest.mark.slow

#: the exact sum over 20 jobs is checked without the model in test_billing.py; here the
#: predict_time is the one the worker measured
JOBS = 4


def test_credits_after_real_jobs_equal_their_predict_times_times_price(
    make_client, tiny_models, tmp_path
) -> None:
    priced = f"""
[presets.priced]
base = "{tiny_models.sdxl}"
lora = "{tiny_models.lora_diffusers}"
scheduler = "Euler"
price_per_second = 0.75
"""
    presets = write_presets(tmp_path / "priced.toml", tiny_models, priced)
    client: Client = make_client(
        run_worker=True, presets=presets, submits_per_minute=0, max_active_jobs=0
    )
    key = client.new_key(credits=10_000)
    ids = []
    for i in range(JOBS):
        r = client.submit(key, preset="priced", steps=2, seed=i)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    failing = client.submit(key, preset="missing-model").json()["id"]
    deadline = time.monotonic() + 240
    jobs = {}
    while len(jobs) < JOBS + 1:
        assert time.monotonic() < deadline, f"{len(jobs)} of {JOBS + 1} jobs finished"
        for job_id in [*ids, failing]:
            if job_id not in jobs:
                job = client.svc.jobs.get(job_id)
                if job.status.is_terminal:
                    jobs[job_id] = job
        time.sleep(0.1)
    assert jobs[failing].status.value == "failed"
    assert all(jobs[i].status.value == "succeeded" for i in ids)
    spent = sum(jobs[i].predict_time * 0.75 for i in ids)  # exact stored predict_time
    assert spent > 0
    account = client.get("/v1/account", headers=bearer(key)).json()
    assert account["balance"] == pytest.approx(10_000 - spent, abs=1e-9)
    assert account["reserved"] == 0
    assert assert_balance_is_ledger_sum(client, key) == account["balance"]
    settles = [u for u in account["usage"] if u["kind"] == "settle"]
    assert len(settles) == JOBS and all("capped" not in u["note"] for u in settles)
