"""The web app's router: the page, versioned assets, caching headers, and no shadowed API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sticker_maker.api import create_app
from sticker_maker.api.web import WEB_DIR, assets_version
from sticker_maker.config import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("web-home")
    app = create_app(
        Settings.load(home, public_url="https://stickers.example.org"), run_worker=False
    )
    with TestClient(app) as c:
        yield c


def test_page_is_revalidated_and_names_versioned_assets(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    version = assets_version()
    assert r.headers["etag"] == f'"{version}"'
    assert "{{ASSETS}}" not in r.text
    assets = set(re.findall(r'(?:src|href)="(web/[^"]+)"', r.text))
    assert {f"web/{version}/app.js", f"web/{version}/style.css"} <= assets
    # the page only talks to its own origin and the public URL outputs are served from
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "https://stickers.example.org" in csp
    assert r.headers["x-content-type-options"] == "nosniff"

    again = client.get("/", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_assets_are_immutable_under_their_version(client: TestClient) -> None:
    version = assets_version()
    js = client.get(f"/web/{version}/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert js.content == (WEB_DIR / "app.js").read_bytes()
    css = client.get(f"/web/{version}/style.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert client.get(f"/web/{version}/icon.svg").headers["content-type"] == "image/svg+xml"
    # an old version's URL gets today's file, and must not be cached as if it were the old one
    stale = client.get("/web/000000000000/app.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["../api/web.py", "..%2Fapi%2Fweb.py", "nope.js", "index.html", "", "%2e%2e/config.py"]
)
def test_nothing_outside_the_web_folder_is_served(client: TestClient, path: str) -> None:
    r = client.get(f"/web/{assets_version()}/{path}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_api_routes_are_not_shadowed(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert "presets" in client.get("/v1/presets").json()
    assert client.get("/v1/jobs").status_code == 401
    assert client.post("/v1/jobs", json={}).status_code == 401
    # unknown paths stay API 404s: the page is only at /
    for path in ("/no-such-page", "/web", "/web/", "/v1/jobs/x/y/z"):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert missing.headers["content-type"] == "application/json", path
    # the page is not part of the API description
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_every_asset_the_page_loads_exists() -> None:
    """Modules import each other by relative path: each one imported must be shipped."""
    names = {p.name for p in WEB_DIR.iterdir()}
    for module in WEB_DIR.glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert imported in names, f"{module.name} imports missing {imported}"
    assert Path(WEB_DIR / "index.html").is_file()
