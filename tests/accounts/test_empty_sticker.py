"""An empty sticker (the cut-out found nothing). Decided (README, "Empty stickers"):

* a generation job succeeds (its opaque image is real work, and is kept and billed); the
  sticker output is marked ``"empty": true``, the logs carry a warning, exports of it are
  a 409 that says why (never a 500), and the web page shows a note instead of a blank card;
* an upload job (cut-out) fails with a clear error and costs nothing, since the sticker is
  all it makes (a split with no pieces, likewise)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from accounts.helpers import Client, bearer
from sticker_maker.errors import InvalidInput
from sticker_maker.inputs import CutoutInput
from sticker_maker.jobs import OutputFile
from sticker_maker.presets import load_presets
from sticker_maker.storage import new_file_name
from sticker_maker.worker import stickers
from sticker_maker.worker.predictor import sticker_output


def _png(rgba: tuple[int, int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), rgba).save(buf, format="PNG")
    return buf.getvalue()


def test_an_empty_cut_out_of_a_generated_image_is_marked_and_warned() -> None:
    preset = load_presets().get("sticker-maker")
    white = Image.new("RGB", (96, 96), "white")
    lines: list[str] = []
    sticker = stickers.finish(white, preset, None, lines.append)
    assert sticker.getchannel("A").getextrema() == (0, 0)
    assert stickers.EMPTY_WARNING in lines
    assert sticker_output(white, sticker).empty
    drawn = white.copy()
    drawn.paste((200, 0, 0), (30, 30, 66, 66))
    assert not sticker_output(drawn, stickers.finish(drawn, preset, None, lines.append)).empty


def test_an_empty_cut_out_of_an_upload_fails_the_job() -> None:
    preset = load_presets().get("sticker-maker")
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), "white").save(buf, "PNG")
    job = CutoutInput(
        preset="sticker-maker", image="x.png", width=96, height=96,
        content_type="image/png", remover="auto",
    )  # fmt: skip
    lines: list[str] = []
    with pytest.raises(InvalidInput, match=r"nothing was found to cut out.*costs nothing"):
        stickers.cutout(
            job, buf.getvalue(), preset, on_progress=lambda *_: None, should_cancel=None,
            log=lines.append,
        )  # fmt: skip
    assert stickers.EMPTY_WARNING not in lines  # the job's error says it all


def test_an_empty_sticker_is_shown_as_such_and_exports_say_why(make_client) -> None:  # type: ignore
    client: Client = make_client()
    key = client.new_key(credits=100)
    job_id = client.submit(key).json()["id"]
    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None and job.id == job_id
    outputs = []
    for kind, pixels in (("image", (255, 255, 255, 255)), ("sticker", (0, 0, 0, 0))):
        name = new_file_name("png")
        client.svc.storage.put(name, _png(pixels))
        outputs.append(OutputFile(name, kind, 0, job.input.seed, 64, 64, empty=kind == "sticker"))
    assert client.svc.jobs.complete(job, outputs, 1.0)
    envelope = client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).json()
    assert envelope["status"] == "succeeded"
    assert [o.get("empty", False) for o in envelope["output"]] == [False, True]
    url = f"/v1/jobs/{job_id}/outputs/0/export"  # sticker index 0
    for target in ("print_svg", "png", "whatsapp"):
        r = client.get(f"{url}/{target}", headers=bearer(key))
        assert r.status_code == 409, r.text
        assert "is empty: the cut-out found nothing" in r.json()["error"]["message"]


def test_print_svg_of_a_transparent_sticker_not_marked_empty_is_409(make_client) -> None:  # type: ignore
    """Stickers stored before the mark existed: the cut line's absence is still a 409."""
    client: Client = make_client()
    key = client.new_key(credits=100)
    job_id = client.submit(key).json()["id"]
    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None
    name = new_file_name("png")
    client.svc.storage.put(name, _png((0, 0, 0, 0)))
    assert client.svc.jobs.complete(job, [OutputFile(name, "sticker", 0, 1, 64, 64)], 1.0)
    r = client.get(f"/v1/jobs/{job_id}/outputs/0/export/print_svg", headers=bearer(key))
    assert r.status_code == 409 and "fully transparent" in r.json()["error"]["message"]
    assert (
        client.get(f"/v1/jobs/{job_id}/outputs/0/export/print_png", headers=bearer(key)).status_code
        == 200
    )
