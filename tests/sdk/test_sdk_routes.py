"""Every route family through the SDK, sync and async, against the real app in-process.

Cut-outs, splits, exports (one sticker, a WhatsApp pack), the account, admin key
management, live events, presets and uploaded files, each with the SDK's typed errors.
As in ``test_sdk_in_process.py``, the app runs no worker of its own: it shares the
database and files of ``shared_server``, whose worker runs the jobs.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

import sticker_maker as sm

pytestmark = pytest.mark.slow


def disc_picture(size: int = 128, colour: tuple[int, int, int] = (220, 60, 40)) -> bytes:
    """An orange disc on white, as PNG: what a cut-out turns into a round sticker."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), colour)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def sheet_picture() -> bytes:
    """Three separate shapes on white: a sheet the split cuts into three stickers."""
    image = Image.new("RGB", (240, 96), "white")
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(((200, 40, 40), (40, 160, 60), (40, 60, 200))):
        draw.ellipse((12 + 80 * i, 20, 68 + 80 * i, 76), colour)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def dominant(sticker: Image.Image) -> int:
    """The strongest colour channel of a sticker's opaque, coloured pixels (0 red, 1 green,
    2 blue), leaving out its white border."""
    pixels = np.asarray(sticker.convert("RGBA")).reshape(-1, 4).astype(int)
    art = pixels[(pixels[:, 3] == 255) & (pixels[:, :3].min(axis=1) < 200)]
    return int(np.argmax(art[:, :3].mean(axis=0)))


@pytest.fixture(scope="module")
def user_key(app: FastAPI) -> str:
    return app.state.services.keys.create(credits=5000, label="sdk-user").secret


@pytest.fixture(scope="module")
def admin_key(app: FastAPI) -> str:
    return app.state.services.keys.create(scope="admin", label="sdk-admin").secret


@pytest.fixture
def client(http: TestClient, user_key: str) -> Iterator[sm.Client]:
    with sm.Client("http://testserver", user_key, http_client=http) as c:
        yield c


@pytest.fixture
def admin(http: TestClient, admin_key: str) -> Iterator[sm.Client]:
    with sm.Client("http://testserver", admin_key, http_client=http) as c:
        yield c


@pytest.fixture(scope="module")
def disc_job(http: TestClient, user_key: str) -> sm.Job:
    """A finished cut-out of the disc (default options: a border, trimmed)."""
    with sm.Client("http://testserver", user_key, http_client=http) as c:
        return c.cutouts.create(disc_picture()).wait(timeout=120)


# -- cut-outs and splits ---------------------------------------------------------------


def test_a_cutout_from_bytes_is_a_transparent_sticker(disc_job: sm.Job) -> None:
    assert disc_job.raw["kind"] == "cutout" and disc_job.succeeded
    (sticker,) = disc_job.stickers
    image = sticker.to_pil()
    alpha = np.asarray(image)[..., 3]
    assert image.mode == "RGBA"
    assert alpha[0].max() == 0 and alpha[:, 0].max() == 0  # the white backdrop is gone
    centre = np.asarray(image)[image.height // 2, image.width // 2]
    assert centre[3] == 255 and centre[0] > 150 > centre[2]  # the orange disc is kept
    assert sticker.job_id == disc_job.id and sticker.index == 0


def test_cutout_options_a_path_and_an_upload_as_the_image(
    client: sm.Client, tmp_path: Path
) -> None:
    picture = tmp_path / "disc.png"
    picture.write_bytes(disc_picture(96))
    from_path = client.cutouts.create(picture, border=0, trim=False, shadow=False)
    assert from_path.status in ("queued", "running")
    assert (from_path.input["border"], from_path.input["trim"]) == (0, False)
    uploaded = client.files.upload(disc_picture(80))
    from_file = client.cutouts.create(uploaded, holes="keep")
    assert from_file.input["holes"] == "keep"
    assert from_path.wait(timeout=120).stickers[0].to_pil().size == (96, 96)  # not trimmed
    assert from_file.wait(timeout=120).succeeded


def test_a_bad_cutout_option_names_its_field(client: sm.Client) -> None:
    with pytest.raises(sm.InvalidRequestError) as caught:
        client.cutouts.create(disc_picture(), holes="sometimes")
    assert caught.value.status_code == 400 and "holes" in caught.value.fields
    with pytest.raises(sm.InvalidRequestError) as caught:
        client.cutouts.create(b"not a picture")
    assert "image" in caught.value.fields
    with pytest.raises(TypeError, match="image"):
        client.cutouts.create(12345)


def test_a_split_gives_one_sticker_per_piece(client: sm.Client) -> None:
    job = client.splits.create(sheet_picture(), border=2).wait(timeout=120)
    assert job.raw["kind"] == "split" and len(job.stickers) == 3
    assert [dominant(s.to_pil()) for s in job.stickers] == [0, 1, 2]  # red, green, blue


# -- exports ---------------------------------------------------------------------------


def test_export_a_sticker_for_an_app(client: sm.Client, disc_job: sm.Job, tmp_path: Path) -> None:
    export = client.exports.sticker(disc_job.stickers[0], "whatsapp")
    assert export.content_type == "image/webp" and export.filename.endswith("-whatsapp.webp")
    image = Image.open(io.BytesIO(export.data))
    assert (image.format, image.size) == ("WEBP", (512, 512)) and len(export.data) <= 100 * 1024
    saved = export.save(f"{tmp_path}/out/")
    assert saved == tmp_path / "out" / export.filename and saved.read_bytes() == export.data
    by_number = client.exports.sticker(0, "whatsapp_tray", job=disc_job.id)
    assert Image.open(io.BytesIO(by_number.data)).size == (96, 96)


def test_export_errors_are_typed(client: sm.Client, disc_job: sm.Job) -> None:
    with pytest.raises(sm.InvalidRequestError) as caught:
        client.exports.sticker(disc_job.stickers[0], "gif")
    assert "target" in caught.value.fields
    with pytest.raises(sm.NotFoundError):
        client.exports.sticker(7, "png", job=disc_job.id)
    with pytest.raises(sm.NotFoundError):
        client.exports.sticker(0, "png", job="no-such-job")


def test_a_whatsapp_pack_from_outputs_and_pairs(client: sm.Client, disc_job: sm.Job) -> None:
    sticker = disc_job.stickers[0]
    pack = client.exports.whatsapp_pack(
        [sticker, (disc_job.id, 0), (disc_job, sticker)], name="Discs", publisher="sdk"
    )
    assert pack.content_type == "application/zip" and pack.filename == "Discs.zip"
    with zipfile.ZipFile(io.BytesIO(pack.data)) as archive:
        names = set(archive.namelist())
        contents = json.loads(archive.read("contents.json"))
    assert {"contents.json", "tray.png", "01.webp", "02.webp", "03.webp"} <= names
    (listed,) = contents["sticker_packs"]
    assert (listed["name"], listed["publisher"], len(listed["stickers"])) == ("Discs", "sdk", 3)
    with pytest.raises(sm.InvalidRequestError) as caught:
        client.exports.whatsapp_pack([sticker], name="Too few", publisher="sdk")
    assert "stickers" in caught.value.fields


# -- account, keys, presets, files, events ---------------------------------------------


def test_account_shows_the_key_its_balance_and_ledger(client: sm.Client, disc_job: sm.Job) -> None:
    account = client.account.get(usage=100)
    assert account.key.label == "sdk-user" and account.key.scope == "user"
    assert 0 < account.balance <= 5000 and account.reserved >= 0
    kinds = [row["kind"] for row in account.usage]
    assert kinds[-1] == "grant" and "settle" in kinds  # the cut-out was charged
    assert account.limits.max_active_jobs >= 0
    assert client.account.get(usage=0).usage == []


def test_admin_manages_keys_and_users_may_not(
    admin: sm.Client, client: sm.Client, http: TestClient
) -> None:
    with pytest.raises(sm.PermissionDeniedError) as caught:
        client.keys.list()
    assert caught.value.status_code == 403

    made = admin.keys.create(label="made by the sdk", credits=12.5, max_active_jobs=2)
    assert made.secret.startswith("sm_") and made.key.balance == 12.5
    assert made.key.limits.max_active_jobs == 2
    with sm.Client("http://testserver", made.secret, http_client=http) as new:
        assert new.account.get().balance == 12.5
    assert made.key.id in [k.id for k in admin.keys.list()]
    assert admin.keys.get(made.key.id).label == "made by the sdk"
    assert admin.keys.grant(made.key.id, 7.5, note="top-up").balance == 20.0
    limited = admin.keys.set_limits(made.key.id, submits_per_minute=3)
    assert (limited.limits.submits_per_minute, limited.limits.max_active_jobs) == (3, 2)
    assert admin.keys.set_safety(made.key.id, "strict").safety == "strict"
    rotated = admin.keys.rotate(made.key.id)
    assert rotated.key.id == made.key.id and rotated.secret != made.secret
    with (
        sm.Client("http://testserver", made.secret, http_client=http) as old,
        pytest.raises(sm.AuthenticationError),
    ):
        old.account.get()
    revoked = admin.keys.revoke(made.key.id)
    assert revoked.revoked and made.key.id not in [k.id for k in admin.keys.list()]
    assert made.key.id in [k.id for k in admin.keys.list(include_revoked=True)]
    with pytest.raises(sm.InvalidRequestError) as caught:
        admin.keys.create(scope="root")
    assert "scope" in caught.value.fields


def test_presets_list_what_the_service_offers(client: sm.Client) -> None:
    presets = {p.name: p for p in client.presets.list()}
    tiny = presets["tiny"]
    assert (tiny.aliases, tiny.steps, tiny.width, tiny.scheduler) == (("t",), 4, 64, "Euler")
    assert "missing-model" in presets


def test_files_upload_list_download_delete(client: sm.Client, tmp_path: Path) -> None:
    data = disc_picture(64)
    uploaded = client.files.upload(data, metadata={"note": "a disc"})
    assert uploaded.content_type == "image/png" and uploaded.size == len(data)
    assert uploaded.metadata == {"note": "a disc"} and uploaded.url.endswith(uploaded.id)
    path = tmp_path / "again.png"
    path.write_bytes(data)
    second = client.files.upload(path)
    assert second.name == "again.png"
    assert [f.id for f in client.files.list()][:2] == [second.id, uploaded.id]
    assert client.files.get(uploaded.id).sha256 == uploaded.sha256
    assert client.files.download(uploaded.id) == data
    client.files.delete(uploaded.id)
    with pytest.raises(sm.NotFoundError):
        client.files.get(uploaded.id)
    with pytest.raises(sm.InvalidRequestError) as caught:
        client.files.upload(b"plain text, not a picture")
    assert "content" in caught.value.fields


def test_events_follow_a_job_to_its_end(client: sm.Client) -> None:
    job = client.submit("an owl", preset="tiny", seed=5)
    events = list(client.jobs.events(job.id, timeout=120))
    names = [e.name for e in events]
    assert names[-1] == "done" and set(names) <= {"queue", "progress", "logs", "preview", "done"}
    done = events[-1].job
    assert isinstance(done, sm.Job) and done.id == job.id and done.succeeded
    steps = [e.data["step"] for e in events if e.name == "progress"]
    assert steps == sorted(steps) and (not steps or steps[-1] <= 4)
    with pytest.raises(sm.NotFoundError):
        list(client.jobs.events("no-such-job"))


# -- async -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_has_the_same_calls(
    app: FastAPI, user_key: str, admin_key: str, disc_job: sm.Job
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        sm.AsyncClient("http://sdk.test", user_key, transport=transport) as client,
        sm.AsyncClient("http://sdk.test", admin_key, transport=transport) as admin,
    ):
        uploaded = await client.files.upload(disc_picture(72))
        assert isinstance(uploaded, sm.File) and await client.files.download(uploaded.id)
        job = await client.cutouts.create(uploaded)
        assert isinstance(job, sm.AsyncJob)
        events = [e async for e in client.jobs.events(job.id, timeout=120)]
        assert events[-1].name == "done" and events[-1].job.succeeded
        finished = events[-1].job
        sticker = finished.stickers[0]
        assert (await sticker.to_pil()).mode == "RGBA"
        export = await client.exports.sticker(sticker, "discord")
        assert Image.open(io.BytesIO(export.data)).size == (320, 320)
        split = await (await client.splits.create(sheet_picture())).wait(timeout=120)
        assert len(split.stickers) == 3
        pack = await client.exports.whatsapp_pack(
            [sticker, *split.stickers[:2]], name="Mixed", publisher="sdk"
        )
        assert zipfile.ZipFile(io.BytesIO(pack.data)).read("contents.json")
        assert (await client.account.get()).key.label == "sdk-user"
        assert "tiny" in [p.name for p in await client.presets.list()]
        with pytest.raises(sm.PermissionDeniedError):
            await client.keys.list()
        made = await admin.keys.create(label="async", credits=1)
        assert (await admin.keys.get(made.key.id)).balance == 1
        await client.files.delete(uploaded.id)
        with pytest.raises(sm.NotFoundError):
            await client.files.get(uploaded.id)
        with pytest.raises(sm.NotFoundError):
            [e async for e in client.jobs.events("no-such-job")]


def test_the_readme_example_runs_as_written(
    app: FastAPI, http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("Every other route has its call", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    secret = app.state.services.keys.create(scope="admin", credits=100).secret
    Image.open(io.BytesIO(disc_picture())).convert("RGB").save(tmp_path / "cat.jpg")
    (tmp_path / "sheet.png").write_bytes(sheet_picture())
    Image.open(io.BytesIO(disc_picture(64))).convert("RGB").save(tmp_path / "me.jpg")
    monkeypatch.chdir(tmp_path)
    made: list[sm.Client] = []
    real = sm.Client

    def client(*args: object, **kwargs: object) -> sm.Client:  # the README's, in-process
        made.append(real("http://testserver", secret, http_client=http))
        return made[-1]

    namespace = {"print": lambda *a: None}
    with monkeypatch.context() as patched:
        patched.setattr(sm, "Client", client)
        exec(compile(block, "README.md", "exec"), namespace)
    assert made and namespace["job"].succeeded and len(namespace["sheet"].stickers) == 3
    assert (tmp_path / "cats.zip").stat().st_size > 0 and list((tmp_path / "out").iterdir())
    assert namespace["new"].secret.startswith("sm_")
