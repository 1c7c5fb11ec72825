"""An empty sticker (a fully transparent cut-out) has no cut line: its print_svg export is
a 409 with a message, never a 500."""

from __future__ import annotations

import io

from PIL import Image

from accounts.helpers import Client, bearer
from sticker_maker.jobs import OutputFile
from sticker_maker.storage import new_file_name


def _png(rgba: tuple[int, int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64), rgba).save(buf, format="PNG")
    return buf.getvalue()


def test_print_svg_of_an_empty_sticker_is_409_not_500(make_client) -> None:  # type: ignore
    client: Client = make_client()
    key = client.new_key(credits=100)
    job_id = client.submit(key).json()["id"]
    job = client.svc.jobs.claim_next("test-worker")
    assert job is not None and job.id == job_id
    outputs = []
    for kind, pixels in (("image", (255, 255, 255, 255)), ("sticker", (0, 0, 0, 0))):
        name = new_file_name("png")
        client.svc.storage.put(name, _png(pixels))
        outputs.append(OutputFile(name, kind, 0, job.input.seed, 64, 64))
    assert client.svc.jobs.complete(job, outputs, 1.0)
    url = f"/v1/jobs/{job_id}/outputs/1/export"  # the sticker: the second output
    empty = client.get(f"{url}/print_svg", headers=bearer(key))
    assert empty.status_code == 409, empty.text
    assert "fully transparent" in empty.json()["error"]["message"]
    assert client.get(f"{url}/print_png", headers=bearer(key)).status_code == 200
