"""The KEDA trigger's query, run on a migrated real PostgreSQL, gives the workers the
docs promise: one per 4 jobs queued or running, none when there is nothing to do.

KEDA's PostgreSQL scaler runs the query as written in ``keda.yaml``; the HPA it feeds
(an ``AverageValue`` target) asks for ``ceil(value / targetQueryValue)`` replicas, at
most ``maxReplicaCount``, and KEDA takes the Deployment from 0 to 1 only when the value
passes ``activationTargetQueryValue`` (and back to 0 when it does not, after the
cooldown).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from fleet.manifests import REPO, find, kubectl, render
from sticker_maker.accounts import KeyStore
from sticker_maker.db import Database
from sticker_maker.jobs import JobStore
from sticker_maker.params import GenerationRequest, resolve
from sticker_maker.presets import load_presets

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl not installed (dev extra)")

#: the table in docs/deploy.md and keda.yaml: jobs queued + running → workers (base, max 8)
PROMISED = [(0, 0), (1, 1), (4, 1), (5, 2), (8, 2), (9, 3), (12, 3), (29, 8), (40, 8)]


def replicas(value: float, trigger: dict[str, Any], scaled: dict[str, Any]) -> int:
    """What KEDA + the HPA settle on for a metric ``value``."""
    meta = trigger["metadata"]
    if value <= float(meta["activationTargetQueryValue"]):
        return scaled["spec"]["minReplicaCount"]
    wanted = math.ceil(value / float(meta["targetQueryValue"]))
    return max(1, min(scaled["spec"]["maxReplicaCount"], wanted))


def test_keda_query_on_postgresql_gives_the_promised_workers(pg_url: str) -> None:
    import psycopg

    from sticker_maker.db.database import postgres_dsn

    scaled = find(render("base"), "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "postgresql"
    query = trigger["metadata"]["query"]

    db = Database(pg_url)
    db.upgrade()  # the schema `db upgrade` (the migrate Job) makes
    store = JobStore(db)
    presets = load_presets(None)
    key = KeyStore(db).create(credits=1000).key.id

    def submit(n: int) -> None:
        for i in range(n):
            store.submit(key, resolve(GenerationRequest(prompt=f"cat {i}"), presets))

    def run_query() -> float:
        with psycopg.connect(postgres_dsn(pg_url)) as conn:  # as KEDA does: raw SQL
            return float(conn.execute(query).fetchone()[0])

    seen = []
    total = 0
    try:
        for jobs, workers in PROMISED:
            submit(jobs - total)
            total = jobs
            # some of them running (they count), the rest queued
            for _ in range(min(2, jobs // 3)):
                store.claim_next("w")
            value = run_query()
            assert value == jobs
            seen.append((jobs, replicas(value, trigger, scaled)))
            assert replicas(value, trigger, scaled) == workers, (jobs, value)
        # finished jobs do not count: end every running job, the queued ones stay
        running = [store.claim_next("w") for _ in range(3)]
        for job in running:
            assert job is not None
            store.fail(job, "done")
        assert run_query() == total - 3
    finally:
        db.dispose()
    print("keda: jobs queued+running → workers:", seen)

    # the docs promise the same table
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert "| jobs queued + running | 0 | 1–4 | 5–8 | 9–12 | … | 29 or more |" in docs  # noqa: RUF001
    assert "| workers | 0 | 1 | 2 | 3 | … | 8 (`maxReplicaCount`) |" in docs
    # the overlays change only the ceiling
    assert find(render("overlays/single-node"), "ScaledObject")["spec"]["maxReplicaCount"] == 1
    assert find(render("overlays/cluster"), "ScaledObject")["spec"]["maxReplicaCount"] == 16
