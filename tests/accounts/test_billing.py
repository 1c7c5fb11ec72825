"""Credits: reservation at submit, settlement to predict_time x price, refunds, exactly once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from accounts.helpers import Client, assert_balance_is_ledger_sum, bearer
from sticker_maker.accounts import billing
from sticker_maker.db import ledger
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets


def rows(client: Client, job_id: str) -> dict[str, float]:
    with client.svc.db.read() as conn:
        found = conn.execute(
            select(ledger.c.kind, ledger.c.amount).where(ledger.c.job_id == job_id)
        ).all()
    kinds = [k for k, _ in found]
    assert len(kinds) == len(set(kinds)), f"a movement repeats: {kinds}"
    return dict(found)


def test_estimate_formula_and_reservation(client: Client) -> None:
    presets = load_presets()
    job = resolve(GenerationRequest(prompt="x", width=1024, height=1024, steps=20), presets)
    assert billing.estimate_seconds(job, base_seconds=30, step_seconds=1.0) == 50.0
    big = resolve(
        GenerationRequest(prompt="x", width=1024, height=512, steps=10, samples=2, upscale=True),
        presets,
    )
    # 2 samples x 0.5 MP x (10 + 4 x 10 + 10) steps = 60 step-equivalents
    assert billing.estimate_seconds(big, base_seconds=30, step_seconds=0.5) == 60.0
    assert billing.reservation(job, 2.0, client.svc.settings) == 100.0


def test_success_settles_to_predict_time_and_refunds_the_rest(client: Client) -> None:
    key = client.new_key(credits=100)
    job = client.submit(key, steps=4).json()
    reserved = 30 + 4 * 64 * 64 / 1024**2
    assert client.svc.keys.balance(key.split("_")[1]) == pytest.approx(100 - reserved)
    account = client.get("/v1/account", headers=bearer(key)).json()
    assert account["reserved"] == pytest.approx(reserved)
    client.run_next(predict_time=2.5)
    moves = rows(client, job["id"])
    assert moves == pytest.approx({"reserve": -reserved, "refund": reserved, "settle": -2.5})
    account = client.get("/v1/account", headers=bearer(key)).json()
    assert account["balance"] == pytest.approx(97.5) and account["reserved"] == 0
    assert [u["kind"] for u in account["usage"][:3]] == ["settle", "refund", "reserve"]
    assert account["usage"][0]["note"].startswith("2.500 s x 1/s")


def test_twenty_jobs_cost_exactly_their_predict_time_times_price(client: Client) -> None:
    key = client.new_key(credits=5000, submits_per_minute=0)
    times = [0.1 + i * 0.37 for i in range(20)]
    # all submitted before any ran: each reserves the fallback estimate (30 s), above
    # every time here (after a job, reservations follow the measured speed: test_speed.py)
    for _ in times:
        assert client.submit(key, steps=2).status_code == 201
    for t in times:
        client.run_next(predict_time=t)
    balance = client.get("/v1/account", headers=bearer(key)).json()["balance"]
    assert balance == pytest.approx(5000 - sum(times), abs=1e-9)
    assert assert_balance_is_ledger_sum(client, key) == balance


def test_failed_and_canceled_jobs_are_refunded_in_full(client: Client) -> None:
    key = client.new_key(credits=100)
    failed = client.submit(key).json()["id"]
    client.run_next(predict_time=3.0, fail="boom")
    canceled = client.submit(key).json()["id"]
    assert client.post(f"/v1/jobs/{canceled}/cancel", headers=bearer(key)).status_code == 200
    for job_id in (failed, canceled):
        moves = rows(client, job_id)
        assert "settle" not in moves and moves["refund"] == -moves["reserve"] > 0
    assert client.get("/v1/account", headers=bearer(key)).json()["balance"] == 100
    assert assert_balance_is_ledger_sum(client, key) == 100


def test_settlement_happens_once_even_when_completion_is_retried_or_raced(
    client: Client,
) -> None:
    key = client.new_key(credits=100)
    job_id = client.submit(key).json()["id"]
    job = client.svc.jobs.claim_next("w1")
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def finish() -> None:
        barrier.wait()
        results.append(client.svc.jobs.complete(job, [], 1.5))

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert client.svc.jobs.fail(job, "late") is False  # fenced: the job is no longer running
    # even a direct second settlement of the same row writes nothing new
    again = {
        "id": job_id,
        "key_id": job.key_id,
        "status": "succeeded",
        "predict_time": 9.0,
        "price_per_second": 1.0,
    }
    with client.svc.db.write() as conn:
        billing.finalize(conn, again)
    assert rows(client, job_id)["settle"] == -1.5
    assert assert_balance_is_ledger_sum(client, key) == pytest.approx(98.5)


def test_insufficient_credits_is_406_in_each_envelope(client: Client) -> None:
    key = client.new_key(credits=5)
    native = client.submit(key)
    assert native.status_code == 406
    error = native.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["message"].startswith("Insufficient credits")
    seed = client.post(
        "/api/v1/generate", headers={"apikey": key}, json={"mid": 3123, "input": {"prompt": "x"}}
    )
    assert seed.status_code == 406
    assert seed.json()["status_code"] == "error" and seed.json()["code"] == 406
    assert seed.json()["message"].startswith("Insufficient credits")
    # nothing was queued or held
    assert client.get("/v1/jobs", headers=bearer(key)).json()["jobs"] == []
    assert client.get("/v1/account", headers=bearer(key)).json()["balance"] == 5


def test_charge_never_exceeds_the_reservation(client: Client) -> None:
    key = client.new_key(credits=31)
    job_id = client.submit(key, steps=1).json()["id"]
    client.run_next(predict_time=500.0)  # far beyond the estimate
    moves = rows(client, job_id)
    assert moves["settle"] == moves["reserve"]
    assert client.get("/v1/account", headers=bearer(key)).json()["balance"] >= 0


def test_price_per_second_comes_from_the_preset(make_client, tmp_path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text("[presets.sticker-maker]\nprice_per_second = 0.25\n")
    client = make_client(presets=presets)
    key = client.new_key(credits=100)
    job_id = client.submit(key).json()["id"]
    client.run_next(predict_time=4.0)
    assert rows(client, job_id)["settle"] == -1.0
