"""A job whose images the content-safety model checks never gets live previews: a
preview would show its pixels before the check has passed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sticker_maker.worker.predictor import Predictor, Task

pytest.importorskip("torch")


def _task(safety: str | None, sent: list[bytes]) -> Task:
    return Task(job=None, on_result=lambda *_: None, safety=safety, on_preview=sent.append)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image_check", "level", "previews"),
    [
        (False, None, True),  # no image model configured: nothing to wait for
        (True, None, False),  # checked by default
        (True, "standard", False),
        (True, "strict", False),
        (True, "relaxed", True),  # levels that do not check images
        (True, "off", True),
    ],
)
def test_previews_only_for_jobs_whose_images_are_not_checked(
    image_check: bool, level: str | None, previews: bool
) -> None:
    predictor = Predictor()
    # only its presence matters here; the real check runs in tests/safety
    predictor.images = object() if image_check else None  # type: ignore[assignment]
    sent: list[bytes] = []
    callback = predictor._previews(_task(level, sent))
    assert (callback is not None) == previews
    if callback is not None:
        callback([Image.new("RGB", (32, 32), "green")])
        assert Image.open(io.BytesIO(sent[0])).format == "JPEG"
