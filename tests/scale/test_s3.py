"""S3 storage against a real S3 server (SeaweedFS), and output URLs through the API."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from scale.cluster import SeaweedS3
from sticker_maker.api import create_app
from sticker_maker.config import Settings
from sticker_maker.errors import InvalidInput
from sticker_maker.storage import new_file_name, open_storage
from sticker_maker.storage.s3 import S3Storage


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(buf, format="PNG")
    return buf.getvalue()


def bucket() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_put_get_stream_delete(s3_env: SeaweedS3) -> None:
    storage = open_storage(s3_env.url(bucket()) + "&region=us-east-1", Path("/nonexistent"))
    assert isinstance(storage, S3Storage)  # the bucket was created on first use
    name, data = new_file_name("png"), png()
    storage.put(name, data)
    assert storage.get(name) == data
    assert storage.path(name) is None and storage.redirect_url(name) is None
    chunks, size = storage.open(name)
    assert size == len(data) and b"".join(chunks) == data
    head = s3_env.client().head_object(Bucket=storage.bucket, Key=name)
    assert head["ContentType"] == "image/png"
    storage.delete(name)
    with pytest.raises(FileNotFoundError):
        storage.get(name)
    with pytest.raises(FileNotFoundError):
        storage.open("../../etc/passwd")


def test_prefix_and_options_come_from_the_url(s3_env: SeaweedS3) -> None:
    name = bucket()
    storage = S3Storage.from_url(f"s3://{name}/outputs/v1?endpoint={s3_env.endpoint}&redirect=1")
    assert storage.prefix == "outputs/v1/" and storage.redirect
    file = new_file_name("png")
    storage.put(file, png())
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket=name)["Contents"]]
    assert keys == [f"outputs/v1/{file}"]
    with pytest.raises(InvalidInput, match="unknown option"):
        S3Storage.from_url(f"s3://{name}?endpont={s3_env.endpoint}")
    with pytest.raises(InvalidInput, match="s3://BUCKET"):
        S3Storage.from_url("s3://")


def test_wrong_credentials_fail_at_start_with_a_hint(
    s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(InvalidInput, match="AWS_ACCESS_KEY_ID") as info:
        S3Storage.from_url(s3.url(bucket()))
    assert info.value.errors[0].field == "storage"


@pytest.fixture
def s3_app(s3_env: SeaweedS3, tmp_path: Path) -> Iterator[tuple[TestClient, S3Storage]]:
    settings = Settings.load(tmp_path / "home", storage=s3_env.url(bucket()))
    app = create_app(settings, run_worker=False)
    with TestClient(app) as client:
        yield client, app.state.services.storage


def test_files_are_streamed_through_the_api(s3_app: tuple[TestClient, S3Storage]) -> None:
    client, storage = s3_app
    name, data = new_file_name("png"), png()
    storage.put(name, data)
    r = client.get(f"/files/{name}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(len(data))
    missing = client.get(f"/files/{new_file_name('png')}")
    assert missing.status_code == 404 and "not found" in missing.json()["error"]["message"]


def test_files_redirect_to_a_presigned_url_when_asked(s3_env: SeaweedS3, tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home", storage=s3_env.url(bucket()) + "&redirect=true")
    app = create_app(settings, run_worker=False)
    with TestClient(app) as client:
        storage = app.state.services.storage
        name, data = new_file_name("png"), png()
        storage.put(name, data)
        r = client.get(f"/files/{name}", follow_redirects=False)
        assert r.status_code == 307
        target = r.headers["location"]
        assert target.startswith(s3_env.endpoint) and "Signature" in target
        assert httpx.get(target).content == data
        assert client.get(f"/files/{new_file_name('png')}").status_code == 404
