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
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sticker_maker.api import create_app
from sticker_maker.config import Settings

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
