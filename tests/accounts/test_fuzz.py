"""Property-based fuzzing against the service's own OpenAPI schema (schemathesis).

Valid and invalid requests for every operation, authenticated with an admin key
(so admin routes are reached too) and with every limit lifted so generation
gets past them. Bounded (a fixed number of examples, derandomized for CI): no
answer may be a 5xx, nothing may crash, and the service still works after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from sticker_maker.api import create_app
from sticker_maker.config import Settings

EXAMPLES = 400


@pytest.mark.slow
@pytest.mark.heavy  # the everyday run has the OpenAPI contract fuzzer; this one runs in CI
def test_no_input_makes_the_service_fail(tmp_path: Path) -> None:
    app = create_app(
        Settings.load(
            tmp_path / "home",
            requests_per_minute=0,
            submits_per_minute=0,
            max_active_jobs=0,
            max_queue_depth=0,
            sync_timeout=0.05,  # no worker here: synchronous Segmind calls answer 504 at once
        ),
        run_worker=False,
        run_background=False,
    )
    svc = app.state.services
    admin = svc.keys.create(scope="admin", credits=1e9).secret
    auth = {"Authorization": f"Bearer {admin}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE, headers=auth),
        schema.as_strategy(GenerationMode.NEGATIVE, headers=auth),
    )
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.method, case.path, response.text[:500])

    run()
    assert seen.get(201, 0) + seen.get(200, 0) > 0, f"nothing valid got through: {seen}"
    assert sum(v for k, v in seen.items() if 400 <= k < 500) > 0, seen

    # the sticker-maker-compatible submit reads its body itself: fuzz it with JSON directly
    seed_fields = ["prompt", "negative_prompt", "width", "height", "steps", "seed", "upscale"]
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )
    seed_bodies = st.fixed_dictionaries(
        {},
        optional={
            "mid": st.sampled_from([3123, "3123", "tiny", 0, None, [], "x" * 300]),
            "input": st.dictionaries(
                st.sampled_from(seed_fields) | st.text(max_size=8), json_values, max_size=6
            )
            | json_values,
        },
    )

    with TestClient(app, raise_server_exceptions=True) as client:

        @settings(max_examples=150, derandomize=True, database=None, deadline=None)
        @given(body=seed_bodies | json_values)
        def run_seed(body) -> None:  # type: ignore[no-untyped-def]
            raw = json.dumps(body).encode()  # NaN and Infinity too, as Python's json allows
            r = client.post("/api/v1/generate", headers={"apikey": admin}, content=raw)
            assert r.status_code in (200, 400), (body, r.text[:300])
            assert r.json()["status_code"] in ("success", "error")

        run_seed()
    with TestClient(app) as client:  # still alive and still makes jobs
        assert client.get("/health").status_code == 200
        made = client.post("/v1/jobs", headers=auth, json={"prompt": "after the storm"})
        assert made.status_code == 201, made.text
