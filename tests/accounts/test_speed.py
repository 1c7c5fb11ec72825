"""First use: reservations follow this service's measured speed (README, "Credits").

Before any job of a kind and preset has succeeded, the configured fallback applies; after,
3x what the same work took here, read from the database by every API process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from accounts.helpers import Client
from sticker_maker.accounts import speed
from sticker_maker.db import ledger

#: units of a 64x64 job: 20 steps x 64² / 1024² (the helpers' submit)
UNITS = 20 * 64 * 64 / 1024**2


def reserved(client: Client, job_id: str) -> float:
    with client.svc.db.read() as conn:
        amount = conn.execute(
            select(ledger.c.amount).where(ledger.c.job_id == job_id, ledger.c.kind == "reserve")
        ).scalar()
    return -float(amount)


def test_reservations_follow_the_measured_speed(client: Client) -> None:
    key = client.new_key(credits=1000)
    first = client.submit(key, steps=20).json()["id"]
    assert reserved(client, first) == pytest.approx(30 + UNITS)  # the fallback: 30 s + 1 s/unit
    client.run_next(predict_time=2.0)
    second = client.submit(key, steps=20).json()["id"]
    assert reserved(client, second) == pytest.approx(3 * 2.0)  # 3x the same work's time
    client.run_next(predict_time=0.5)  # faster: the speed falls by at most 20 % a job
    third = client.submit(key, steps=20).json()["id"]
    assert reserved(client, third) == pytest.approx(3 * 2.0 * 0.8)
    client.run_next(predict_time=10.0)  # slower: it rises at once
    fourth = client.submit(key, steps=40).json()["id"]
    rate = 10.0 / (UNITS + speed.FIXED_UNITS)
    assert reserved(client, fourth) == pytest.approx(3 * rate * (2 * UNITS + speed.FIXED_UNITS))
    # another preset (and upload jobs) have no measurement yet: the fallback again
    other = client.submit(key, preset="Norod78-SDXL-StickerSheet-Lora", steps=20).json()["id"]
    assert reserved(client, other) == pytest.approx(30 + UNITS)


def test_a_failed_job_teaches_nothing(client: Client) -> None:
    key = client.new_key(credits=1000)
    client.submit(key)
    client.run_next(predict_time=0.01, fail="boom")
    again = client.submit(key, steps=20).json()["id"]
    assert reserved(client, again) == pytest.approx(30 + UNITS)


def test_the_speed_is_shared_through_the_database(
    make_client: Callable[..., Client], tmp_path: Path
) -> None:
    """Measured by one process's worker, read by another API process on the same database."""
    worker_side = make_client(home=tmp_path / "shared")
    api_side = make_client(home=tmp_path / "shared")
    key = worker_side.new_key(credits=1000)
    worker_side.submit(key, steps=20)
    worker_side.run_next(predict_time=1.5)
    job = api_side.submit(key, steps=20).json()["id"]
    assert reserved(api_side, job) == pytest.approx(3 * 1.5)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_first_measurements_from_two_workers_at_once_keep_the_slower(
    dialect: str, tmp_path: Path
) -> None:
    """Two workers may record the first job of a kind at once: neither fails, the slower
    speed is kept (the insert's conflict path on each database)."""
    import json

    import pg

    from sticker_maker.db import Database
    from sticker_maker.params import GenerationRequest, resolve
    from sticker_maker.presets import load_presets

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    if dialect == "postgresql":
        url = pg.create_database(pg.require(), "speed")
    db = Database(url)
    try:
        db.upgrade()
        job = resolve(GenerationRequest(prompt="x", width=64, height=64, steps=20), load_presets())
        row = {"status": "succeeded", "kind": "generate", "preset": job.preset,
               "input": json.dumps(job.model_dump(mode="json")), "billed_time": None}  # fmt: skip
        with db.write() as conn:
            speed._insert(conn, speed.speed_name(job), 0.5, 1.0)
            speed._insert(conn, speed.speed_name(job), 0.2, 2.0)  # faster: the slower stays
            assert speed.seconds_per_unit(conn, job) == pytest.approx(0.5)
            speed._insert(conn, speed.speed_name(job), 0.9, 3.0)  # slower: taken
            assert speed.seconds_per_unit(conn, job) == pytest.approx(0.9)
            speed.observe(conn, {**row, "predict_time": 100 * (UNITS + speed.FIXED_UNITS)})
            assert speed.seconds_per_unit(conn, job) == pytest.approx(100)
    finally:
        db.dispose()
        if dialect == "postgresql":
            pg.drop_database(url)
