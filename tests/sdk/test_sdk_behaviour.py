"""SDK behaviour the service cannot be made to show on demand: retries, bounds, configuration.

Scripted transports stand in for a service that answers 429/503; everything
else about those calls (envelopes, parsing) is covered against the real app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from conftest import REPO, free_port

import sticker_maker as sm
from sticker_maker.sdk import _client
from sticker_maker.sdk._errors import error_for_status

ENVELOPE = {
    "id": "job-1",
    "status": "queued",
    "preset": "tiny",
    "input": {"prompt": "x", "seed": 1},
    "output": [],
    "progress": {"step": 0, "total": 4},
    "metrics": {},
    "queue_position": 0,
}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the SDK's waits instead of waiting."""
    recorded: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_client, "_sleep", recorded.append)
    monkeypatch.setattr(_client, "_asleep", fake_asleep)
    return recorded


def scripted(
    *answers: httpx.Response, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    remaining = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return httpx.MockTransport(handle)


def busy(status: int = 429, retry_after: str | None = "2") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"error": {"code": "rate_limited", "message": "slow down", "retry_after": 2}}
    return httpx.Response(status, json=body, headers=headers)


def test_429_and_503_are_retried_after_retry_after(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    transport = scripted(
        busy(429, "2"), busy(503, "1.5"), httpx.Response(201, json=ENVELOPE), seen=seen
    )
    client = sm.Client("http://svc", "sm_key", transport=transport, max_retries=2)
    job = client.submit("x", preset="tiny")
    assert job.id == "job-1" and len(seen) == 3
    assert sleeps == [2.0, 1.5]
    assert json.loads(seen[-1].content) == {"prompt": "x", "preset": "tiny"}
    assert seen[-1].headers["authorization"] == "Bearer sm_key"


def test_retries_are_bounded_and_then_raise(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    client = sm.Client("http://svc", "k", transport=scripted(busy(), seen=seen), max_retries=2)
    with pytest.raises(sm.RateLimitError) as info:
        client.jobs.list()
    assert len(seen) == 3 and sleeps == [2.0, 2.0]
    assert info.value.status_code == 429 and info.value.retry_after == 2.0
    assert info.value.message == "slow down"

    # no Retry-After: exponential backoff; an HTTP date is understood too
    sleeps.clear()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client = sm.Client(
        "http://svc", "k", transport=scripted(busy(503, None), busy(503, when), busy(503, None))
    )
    with pytest.raises(sm.RateLimitError) as info:
        client.jobs.list()
    assert sleeps[0] == 0.5 and 25 < sleeps[1] <= 30
    assert info.value.status_code == 503


def test_a_retry_after_beyond_the_bound_is_raised_at_once(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    client = sm.Client("http://svc", "k", transport=scripted(busy(429, "120"), seen=seen))
    with pytest.raises(sm.RateLimitError) as info:
        client.jobs.list()
    assert len(seen) == 1 and sleeps == [] and info.value.retry_after == 120.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_client_retries_too(sleeps: list[float]) -> None:
    answers = [busy(429, "3"), httpx.Response(200, json={"jobs": [ENVELOPE]})]
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    async with sm.AsyncClient("http://svc", "k", transport=transport) as client:
        jobs = await client.jobs.list()
    assert [j.id for j in jobs] == ["job-1"] and sleeps == [3.0]


def test_unreachable_service_is_a_connection_error(sleeps: list[float]) -> None:
    client = sm.Client(f"http://127.0.0.1:{free_port()}", "k", max_retries=1)
    with pytest.raises(sm.APIConnectionError) as info:
        client.jobs.list()
    assert "could not reach" in info.value.message and sleeps == [0.5]


def test_a_request_that_times_out_is_not_retried(sleeps: list[float]) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    client = sm.Client("http://svc", "k", transport=httpx.MockTransport(slow))
    with pytest.raises(sm.APITimeoutError):
        client.submit("x")
    assert sleeps == []


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("STICKER_MAKER_URL", raising=False)
    monkeypatch.delenv("STICKER_MAKER_API_KEY", raising=False)
    yield monkeypatch


def test_url_and_key_come_from_arguments_then_environment(clean_env: pytest.MonkeyPatch) -> None:
    assert sm.Client().base_url == "http://127.0.0.1:8000" and sm.Client().api_key is None
    clean_env.setenv("STICKER_MAKER_URL", "http://env.example:9000/")
    clean_env.setenv("STICKER_MAKER_API_KEY", "sm_from_env")
    seen: list[httpx.Request] = []
    client = sm.Client(transport=scripted(httpx.Response(200, json={"jobs": []}), seen=seen))
    assert client.jobs.list() == []
    assert str(seen[0].url) == "http://env.example:9000/v1/jobs?limit=50"
    assert seen[0].headers["authorization"] == "Bearer sm_from_env"
    assert seen[0].headers["user-agent"] == f"sticker-maker-python/{sm.__version__}"
    assert sm.Client("http://arg", "sm_arg").api_key == "sm_arg"


def test_missing_key_error_says_how_to_set_one(clean_env: pytest.MonkeyPatch) -> None:
    answer = httpx.Response(
        401, json={"error": {"code": "authentication_error", "message": "missing API key"}}
    )
    with pytest.raises(sm.AuthenticationError) as info:
        sm.Client("http://svc", transport=scripted(answer)).jobs.list()
    assert "STICKER_MAKER_API_KEY" in str(info.value) and "(HTTP 401)" in str(info.value)


def test_output_downloads_do_not_carry_the_api_key(sleeps: list[float]) -> None:
    seen: list[httpx.Request] = []
    done = {
        **ENVELOPE,
        "status": "succeeded",
        "output": [
            {
                "url": "http://cdn.example/f/abc.png",
                "kind": "sticker",
                "index": 0,
                "seed": 1,
                "width": 64,
                "height": 64,
            }
        ],
    }

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"\x89PNG\r\n\x1a\n...")
        return httpx.Response(200, json=done)

    client = sm.Client("http://svc", "sm_secret", transport=httpx.MockTransport(handle))
    job = client.jobs.get("job-1")
    assert job.stickers[0].filename == "x-1-sticker.png"
    assert job.stickers[0].read().startswith(b"\x89PNG")
    assert "authorization" not in seen[-1].headers


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            400,
            {
                "error": {
                    "code": "invalid_input",
                    "message": "w: bad",
                    "fields": [{"field": "w", "message": "bad"}],
                }
            },
            sm.InvalidRequestError,
            "w: bad",
        ),
        (401, {"error": "invalid API key"}, sm.AuthenticationError, "invalid API key"),
        (403, {"error": {"message": "admins only"}}, sm.PermissionDeniedError, "admins only"),
        (404, {"message": "nope", "code": 404, "status_code": "error"}, sm.NotFoundError, "nope"),
        (406, {"error": "top up"}, sm.InsufficientCreditsError, "top up"),
        (409, {"error": "busy"}, sm.ConflictError, "busy"),
        (500, "<html>oops</html>", sm.ServerError, "<html>oops</html>"),
        (418, None, sm.APIStatusError, "the service answered HTTP 418"),
    ],
)
def test_each_status_maps_to_one_exception(
    status: int, body: object, cls: type[sm.APIStatusError], message: str
) -> None:
    error = error_for_status(status, body)
    assert type(error) is cls and isinstance(error, sm.APIError)
    assert error.status_code == status and error.message == message
    if cls is sm.InvalidRequestError:
        assert error.fields == {"w": "bad"}


def test_import_is_light() -> None:
    code = (
        "import sys, sticker_maker as sm; assert 'httpx' not in sys.modules; sm.Client; "
        "heavy = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'diffusers', 'numpy') "
        "if m in sys.modules]; print(heavy)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"
    assert set(sm.__all__) <= set(dir(sm))
    with pytest.raises(AttributeError):
        sm.NoSuchThing  # noqa: B018


def test_save_into_a_new_folder_or_a_file(tmp_path: Path) -> None:
    done = {
        **ENVELOPE,
        "status": "succeeded",
        "input": {"prompt": "Cute cat", "seed": 7},
        "output": [
            {
                "url": "http://svc/files/a.png",
                "kind": "image",
                "index": 0,
                "seed": 7,
                "width": 8,
                "height": 8,
            }
        ],
    }

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/files/"):
            return httpx.Response(200, content=b"png-bytes")
        return httpx.Response(200, json=done)

    job = sm.Client("http://svc", "k", transport=httpx.MockTransport(handle)).jobs.get("job-1")
    assert job.save(tmp_path / "new" / "folder") == [tmp_path / "new" / "folder" / "cute-cat-7.png"]
    assert job.images[0].save(tmp_path / "mine.png").read_bytes() == b"png-bytes"
