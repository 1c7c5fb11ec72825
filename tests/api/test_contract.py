"""The API contract: what /openapi.json says, offline docs, hostile bodies, methods, and
the small edges of issue 17 (in process, no worker)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.schedulers import SCHEDULER_NAMES


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("contract") / "home"
    app = create_app(Settings.load(home, sync_timeout=0.05), run_worker=False)
    with TestClient(app) as c:
        c.key = app.state.services.keys.create(credits=1000).secret  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


# -- 1. the OpenAPI description --------------------------------------------------------------


def test_every_json_answer_has_a_typed_model(spec: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in _operations(spec):
        for status, response in op["responses"].items():
            for media, body in response.get("content", {}).items():
                schema = body.get("schema", {})
                if "json" in media and not ("$ref" in schema or schema.get("properties")):
                    untyped.append(f"{method} {path} {status} {media}: {schema}")
    assert untyped == []


def test_error_statuses_are_documented_with_the_family_model(spec: dict[str, Any]) -> None:
    def error_ref(op: dict[str, Any], status: str) -> str:
        content = op["responses"][status]["content"]
        (media, body), *_ = content.items()
        return f"{media} {body['schema']['$ref'].rsplit('/', 1)[1]}"

    ops = {(m, p): op for m, p, op in _operations(spec)}
    submit = ops[("POST", "/v1/jobs")]
    assert {"400", "401", "406", "409", "413", "422", "429", "503"} <= set(submit["responses"])
    assert error_ref(submit, "400") == "application/json NativeError"
    assert error_ref(ops[("POST", "/api/v1/generate")], "401") == "application/json SeedError"
    sync = ops[("POST", "/v1/{slug}")]
    assert "504" in sync["responses"] and error_ref(sync, "404") == "application/json SegmindError"
    prediction = ops[("POST", "/v1/predictions")]
    assert "400" not in prediction["responses"]  # Replicate's invalid input is a 422
    assert error_ref(prediction, "422") == "application/problem+json Problem"
    assert "403" in ops[("GET", "/v1/keys")]["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_security_schemes_are_the_three_key_headers_applied_per_route(
    spec: dict[str, Any],
) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert {schemes[n]["name"] for n in ("x-api-key", "apikey")} == {"x-api-key", "apikey"}
    ops = {(m, p): op for m, p, op in _operations(spec)}
    three = [{"bearer": []}, {"x-api-key": []}, {"apikey": []}]
    assert ops[("POST", "/v1/jobs")]["security"] == three
    assert ops[("GET", "/files/{name}")]["security"] == [*three, {}]  # optional there
    assert "security" not in ops[("GET", "/health")]
    assert "security" not in ops[("GET", "/v1/presets")]


def test_enums_request_bodies_and_multipart_forms(spec: dict[str, Any]) -> None:
    ops = {(m, p): op for m, p, op in _operations(spec)}
    export = ops[("GET", "/v1/jobs/{job_id}/outputs/{n}/export/{target}")]
    target = next(p for p in export["parameters"] if p["name"] == "target")
    assert "print_svg" in target["schema"]["enum"] and "whatsapp" in target["schema"]["enum"]
    schemas = spec["components"]["schemas"]
    scheduler = schemas["JobRequest"]["properties"]["scheduler"]
    assert set(SCHEDULER_NAMES) <= set(scheduler["anyOf"][0]["enum"])
    seed = ops[("POST", "/api/v1/generate")]["requestBody"]["content"]["application/json"]
    assert seed["schema"]["required"] == ["mid", "input"]
    assert seed["schema"]["properties"]["input"]["properties"]["steps"]["maximum"] == 100
    pack = schemas["WhatsAppPackRequest"]["properties"]["stickers"]
    assert (pack["minItems"], pack["maxItems"]) == (3, 30)
    for path in ("/v1/cutouts", "/v1/splits", "/v1/files"):
        form = ops[("POST", path)]["requestBody"]["content"]["multipart/form-data"]["schema"]
        file_field = form["required"][0]
        assert form["properties"][file_field]["format"] == "binary", path


# -- 3. /docs and /redoc offline -------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    urls += re.findall(r"""url: *['"]([^'"]+)['"]""", html)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in html and "https://" not in html
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        assert len(r.content) > 1000 or url.endswith(".json"), url
    assert client.get("/docs/assets/core.py").status_code == 404  # only the listed files


# -- 4. hostile bodies -----------------------------------------------------------------------

DEEP = b"[" * 1000 + b"]" * 1000
HUGE_INT = b'{"prompt": "x", "seed": ' + b"9" * 5000 + b"}"


@pytest.mark.parametrize("body", [DEEP, HUGE_INT, b'{"prompt": "x",}'], ids=["deep", "int", "bad"])
@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/v1/jobs", "native"),
        ("/api/v1/generate", "seed"),
        ("/v1/stickersheet", "segmind"),
        ("/v2/stickersheet", "segmind"),
        ("/v1/predictions", "replicate"),
        ("/v1/exports/whatsapp-pack", "native"),
    ],
)
def test_hostile_bodies_are_4xx_naming_the_body(
    client: TestClient, path: str, family: str, body: bytes
) -> None:
    r = client.post(
        path, content=body, headers={"x-api-key": client.key, "content-type": "application/json"}
    )
    assert r.status_code == (422 if family == "replicate" else 400), r.text
    data = r.json()
    if family == "native":
        assert [f["field"] for f in data["error"]["fields"]] == ["body"]
    elif family == "seed":
        assert data["message"].startswith("body: ")
    elif family == "segmind":
        assert data["error"].startswith("body: ")
    else:
        assert [f["field"] for f in data["invalid_fields"]] == ["body"]


def test_too_large_bodies_use_the_family_media_type(client: TestClient) -> None:
    limit = client.app.state.services.settings.max_request_bytes
    big = b"{" + b" " * limit + b"}"
    r = client.post("/v1/predictions", content=big, headers={"x-api-key": client.key})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    r = client.post("/v1/jobs", content=big, headers={"x-api-key": client.key})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


# -- 14. the smaller edges ------------------------------------------------------------------


def test_unknown_paths_are_404_and_every_405_says_allow(client: TestClient) -> None:
    h = {"x-api-key": client.key}
    # under /v1 and /v2 a method a path does not take is a 404, TRACE and QUERY too
    for method, path in [
        ("GET", "/v1/nope"),
        ("GET", "/v1/jobs/abc/nope"),
        ("GET", "/v2/x/y"),
        ("TRACE", "/v1/account"),
        ("QUERY", "/v1/jobs"),
        ("TRACE", "/v1/stickersheet"),
    ]:
        r = client.request(method, path, headers=h)
        assert r.status_code == 404 and "no such route" in r.text, (method, path)
    # elsewhere a 405 says which methods the path takes
    for method, path, allow in [
        ("TRACE", "/health", "GET"),
        ("DELETE", "/openapi.json", "GET, HEAD"),
        ("GET", "/api/v1/generate", "POST"),
        ("TRACE", "/api/v1/result", "GET"),
        ("FOO", "/files/x.png", "GET"),
    ]:
        r = client.request(method, path, headers=h)
        assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path)
    r = client.request("TRACE", "/api/v1/generate", headers=h)
    assert r.json()["status_code"] == "error" and "allowed: POST" in r.json()["message"]


def test_account_never_shows_negative_zero(client: TestClient) -> None:
    r = client.get("/v1/account", headers={"x-api-key": client.key})
    assert r.json()["reserved"] == 0.0 and '"reserved":-0.0' not in r.text


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("path", ["/v1/cutouts", "/v1/splits"])
def test_upload_routes_honour_prefer_wait(
    client: TestClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer is the job as the wait left it: here canceled during the wait."""
    svc, waiter = client.app.state.services, client.app.state.waiter
    asked: list[float] = []

    async def wait(job_id: str, key_id: str | None, timeout: float, **_: Any) -> Any:
        asked.append(timeout)
        svc.jobs.request_cancel(job_id, key_id)  # queued: canceled at once
        return svc.jobs.get(job_id, key_id)

    monkeypatch.setattr(waiter, "wait", wait)
    r = client.post(
        path,
        headers={"x-api-key": client.key, "Prefer": "wait=7"},
        files={"image": ("a.png", _png(), "image/png")},
    )
    assert r.status_code == 201, r.text
    assert r.headers["preference-applied"] == "wait=7" and asked == [7]
    assert r.json()["status"] == "canceled"
    bad = client.post(
        path,
        headers={"x-api-key": client.key, "Prefer": "wait=0"},
        files={"image": ("a.png", _png(), "image/png")},
    )
    assert bad.status_code == 400 and bad.json()["error"]["fields"][0]["field"] == "Prefer"


def test_readme_documents_offline_docs_and_statuses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "`/docs` (Swagger UI) and `/redoc` (ReDoc) work offline" in readme
    assert "a 405 whose `Allow` lists those it takes" in readme
