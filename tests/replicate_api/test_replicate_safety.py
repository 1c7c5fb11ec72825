"""The content policy on the Replicate-compatible routes: a refused prompt creates no
prediction and is a problem detail the real client raises, naming the stage, never the term."""

from __future__ import annotations

import pytest
import replicate.exceptions

BLOCKED = "a n.u.d.e woman on the beach"


def test_a_refused_prompt_is_a_problem_detail_and_no_prediction(app) -> None:
    r = app.http.post(
        "/v1/models/fofr/sticker-maker/predictions", json={"input": {"prompt": BLOCKED}}
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert "content policy" in problem["detail"] and "nude" not in problem["detail"].lower()
    assert app.http.get("/v1/predictions").json()["results"] == []

    with pytest.raises(replicate.exceptions.ReplicateError) as raised:
        app.replicate.models.predictions.create("fofr/sticker-maker", input={"prompt": BLOCKED})
    assert raised.value.status == 422
