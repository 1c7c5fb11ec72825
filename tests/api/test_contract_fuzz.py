"""The OpenAPI description is a contract: a bounded schemathesis run holds the server to it.

Every operation of ``/openapi.json`` gets schema-valid and schema-invalid requests
(schemathesis's coverage and fuzzing phases, derandomized so CI sees the same cases),
sent in process through the ASGI app, authenticated with a user key that has credits
(admin routes answer 403, as documented). Each answer must be no 5xx, have a documented
status, and match the documented body. No worker runs: jobs stay queued, and the Segmind
synchronous route answers 504 at once (``sync_timeout``). About 2,000 requests.
"""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.jobs import OutputFile
from sticker_maker.storage import new_file_name

#: generated cases per operation (plus schemathesis's coverage cases)
EXAMPLES = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]


@pytest.fixture(scope="module")
def statuses() -> Iterator[dict[int, int]]:
    seen: dict[int, int] = {}
    yield seen
    print(f"\nschemathesis: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")


def _app() -> FastAPI:
    """The app under test, its state in a folder removed at exit (built at import:
    schemathesis makes one test per operation from its description)."""
    home = Path(tempfile.mkdtemp(prefix="sm-contract-fuzz-"))
    atexit.register(shutil.rmtree, home, True)
    app = create_app(
        Settings.load(
            home / "home",
            requests_per_minute=0,
            submits_per_minute=0,
            max_active_jobs=0,
            max_queue_depth=0,
            sync_timeout=0.05,
        ),
        run_worker=False,
        run_background=False,
    )
    app.state.fuzz_key = app.state.services.keys.create(credits=1e9).secret
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_openapi_description(
    case: schemathesis.Case, statuses: dict[int, int]
) -> None:
    headers = {"Authorization": f"Bearer {APP.state.fuzz_key}"}
    response = case.call(headers=headers)
    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    case.validate_response(response, checks=CHECKS, headers=headers)


def _png(mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (64, 64), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


SEED = {"prompt": "x"}


def test_real_jobs_of_every_kind_match_the_description() -> None:
    """The fuzzer rarely reaches an existing job: answers about real ones, queued and
    succeeded (this test plays the worker), go through the same checks."""
    svc = APP.state.services
    h = {"Authorization": f"Bearer {APP.state.fuzz_key}"}
    client = TestClient(APP)

    def checked(method: str, path: str, **params: Any) -> Any:
        case = schema[path][method].Case(**params)
        response = case.call(headers=h)
        case.validate_response(response, checks=CHECKS, headers=h)
        return response

    made = {
        "generate": client.post("/v1/jobs", headers=h, json={"prompt": "cat", "samples": 2}),
        "cutout": client.post("/v1/cutouts", headers=h, files={"image": ("a.png", _png())}),
        "split": client.post("/v1/splits", headers=h, files={"image": ("a.png", _png())}),
        "seed": client.post(
            "/api/v1/generate", headers=h, json={"mid": 3123, "input": {"prompt": "x"}}
        ),
        "segmind": client.post("/v2/stickersheet", headers=h, json={"prompt": "x"}),
        "replicate": client.post(
            "/v1/models/fofr/sticker-maker/predictions", headers=h, json={"input": {"prompt": "x"}}
        ),
    }
    assert all(r.status_code in (200, 201) for r in made.values()), made
    ids = [
        made["generate"].json()["id"],
        made["cutout"].json()["id"],
        made["split"].json()["id"],
        made["seed"].json()["data"]["tid"],
        made["segmind"].json()["request_id"],
        made["replicate"].json()["id"],
    ]

    def read_all() -> None:
        for job_id in ids:
            assert (
                checked("GET", "/v1/jobs/{job_id}", path_parameters={"job_id": job_id}).status_code
                == 200
            )
        checked("GET", "/v1/jobs")
        checked("GET", "/api/v1/result", query={"tid": ids[3]})
        for route in ("/v2/requests/{request_id}", "/v2/requests/{request_id}/status"):
            checked("GET", route, path_parameters={"request_id": ids[4]})
        checked("GET", "/v1/predictions/{prediction_id}", path_parameters={"prediction_id": ids[5]})
        checked("GET", "/v1/predictions")
        checked("GET", "/v1/account")

    read_all()  # queued
    while (job := svc.jobs.claim_next("contract-test")) is not None:  # play the worker
        outputs = []
        for i in range(2):
            for kind in ("image", "sticker"):
                name = new_file_name("png")
                svc.storage.put(name, _png("RGBA"))
                outputs.append(OutputFile(name, kind, i, 7, 64, 64))
        svc.jobs.complete(job, outputs, 0.5)
    read_all()  # succeeded, with outputs
    done = checked("GET", "/v1/jobs/{job_id}", path_parameters={"job_id": ids[0]}).json()
    assert done["status"] == "succeeded" and len(done["output"]) == 4
    export = checked(
        "GET",
        "/v1/jobs/{job_id}/outputs/{n}/export/{target}",
        path_parameters={"job_id": ids[0], "n": "1", "target": "whatsapp"},
    )
    assert export.status_code == 200 and export.headers["content-type"] == ["image/webp"]
