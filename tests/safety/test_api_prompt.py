"""The prompt check through every API family: refused before anything is queued,
reserved or billed, in each API's own error envelope, counted, logged without the prompt."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from accounts.helpers import Client, bearer
from sqlalchemy import func, select
from typer.testing import CliRunner

from sticker_maker.cli.main import app as cli_app
from sticker_maker.db import jobs, ledger
from sticker_maker.errors import InvalidInput
from sticker_maker.safety import SafetySettings

BLOCKED = "a n.u.d.e woman on the beach"


def _counts(client: Client) -> tuple[int, int]:
    """(jobs, ledger rows) in the database."""
    with client.svc.db.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(jobs)).scalar_one(),
            conn.execute(select(func.count()).select_from(ledger)).scalar_one(),
        )


def _blocked_metric(client: Client, stage: str) -> float:
    admin = client.svc.keys.create(scope="admin").secret  # /metrics on the API port
    text = client.get("/metrics", headers=bearer(admin)).text
    match = re.search(rf'sticker_maker_content_blocked_total{{stage="{stage}"}} (\S+)', text)
    return float(match.group(1)) if match else 0.0


def test_every_api_family_refuses_a_blocked_prompt_before_anything_happens(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    client: Client = make_client()
    key = client.new_key(credits=100)
    before = _counts(client)
    refused_before = _blocked_metric(client, "prompt")
    caplog.set_level(logging.INFO, logger="sticker_maker.safety")

    native = client.submit(key, prompt=BLOCKED)
    assert native.status_code == 422
    error = native.json()["error"]
    assert error["code"] == "content_blocked" and error["stage"] == "prompt"
    assert "nude" not in error["message"].lower() and "refused" in error["message"]

    seed = client.post(
        "/api/v1/generate",
        headers={"apikey": key},
        json={"mid": 3123, "input": {"prompt": BLOCKED}},
    )
    assert seed.status_code == 422
    assert seed.json()["code"] == 422 and seed.json()["status_code"] == "error"
    assert "content policy" in seed.json()["message"]

    for path in ("/v1/sticker-maker", "/v2/sticker-maker"):
        segmind = client.post(path, headers={"x-api-key": key}, json={"prompt": BLOCKED})
        assert segmind.status_code == 422, path
        assert segmind.json()["status"] == "FAILED" and "content policy" in segmind.json()["error"]

    assert _counts(client) == before  # no job, no reservation, no charge
    assert client.svc.keys.balance(key.split("_")[1]) == 100
    assert _blocked_metric(client, "prompt") == refused_before + 4
    logged = [r.getMessage() for r in caplog.records if r.name == "sticker_maker.safety"]
    assert len(logged) == 4 and all("stage prompt" in line for line in logged)
    assert not any("beach" in line or "n.u.d.e" in line for line in logged)

    accepted = client.submit(key, prompt="a cute cat on the beach in Sussex")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["error_code"] is None


def test_key_levels_and_preset_levels(make_client, tmp_path: Path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text(
        '[presets.kids]\nbase = "some/sdxl"\nsafety = "strict"\nwidth = 64\nheight = 64\n'
    )
    client: Client = make_client(presets=presets)
    relaxed = client.new_key(safety="relaxed")
    standard = client.new_key()
    off = client.new_key(safety="off")

    assert client.submit(relaxed, prompt="a nude woman, oil painting").status_code == 201
    assert client.submit(standard, prompt="a nude woman, oil painting").status_code == 422
    # relaxed never allows sexualised minors or sexual violence
    assert client.submit(relaxed, prompt="sexy schoolgirl").status_code == 422
    assert client.submit(relaxed, prompt="rape scene").status_code == 422
    assert client.submit(off, prompt="a nude woman").status_code == 201
    # the strict preset tightens every key, even a relaxed or off one
    assert client.submit(standard, prompt="a sexy red sports car").status_code == 201
    for key in (standard, relaxed, off):
        refused = client.submit(key, preset="kids", prompt="a sexy red sports car")
        assert refused.status_code == 422
    # the job records the level it was admitted at
    job = client.submit(relaxed, preset="kids", prompt="a cute cat").json()
    assert client.svc.jobs.get(job["id"]).safety == "strict"


def test_admins_set_a_keys_level_over_http_and_on_the_command_line(
    make_client, tmp_path: Path
) -> None:
    client: Client = make_client()
    admin = client.new_key(scope="admin")
    user = client.new_key()
    prefix = "sm_" + user.split("_")[1]
    r = client.post(f"/v1/keys/{prefix}/safety", headers=bearer(admin), json={"level": "relaxed"})
    assert r.status_code == 200 and r.json()["key"]["safety"] == "relaxed"
    assert client.submit(user, prompt="a nude woman").status_code == 201
    denied = client.post(f"/v1/keys/{prefix}/safety", headers=bearer(user), json={"level": "off"})
    assert denied.status_code == 403
    bad = client.post(f"/v1/keys/{prefix}/safety", headers=bearer(admin), json={"level": "lax"})
    assert bad.status_code == 400
    created = client.post(
        "/v1/keys", headers=bearer(admin), json={"label": "kids app", "safety": "strict"}
    )
    assert created.status_code == 201 and created.json()["key"]["safety"] == "strict"

    runner = CliRunner()
    home = str(tmp_path / "cli-home")
    made = runner.invoke(cli_app, ["keys", "create", "--safety", "relaxed", "--home", home])
    assert made.exit_code == 0 and "safety relaxed" in made.stderr
    key_prefix = "sm_" + made.stdout.strip().split("_")[1]
    changed = runner.invoke(cli_app, ["keys", "safety", key_prefix, "default", "--home", home])
    assert changed.exit_code == 0 and "safety=default" in changed.stderr
    wrong = runner.invoke(cli_app, ["keys", "create", "--safety", "lax", "--home", home])
    assert wrong.exit_code == 1 and "unknown safety level 'lax'" in wrong.stderr


def test_bad_safety_settings_stop_the_service_at_start(make_client, tmp_path: Path) -> None:
    missing = tmp_path / "our-block-list.txt"
    with pytest.raises(InvalidInput, match=r"our-block-list\.txt"):
        make_client(safety=SafetySettings(block_files=(str(missing),)))
    with pytest.raises(InvalidInput, match="SAFETY_IMAGE_MODEL"):
        make_client(run_worker=True, safety=SafetySettings(image_model=str(tmp_path / "none")))


def test_serve_prints_what_is_wrong_and_exits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STICKER_MAKER_SAFETY_BLOCK_FILES", str(tmp_path / "gone.txt"))
    result = CliRunner().invoke(cli_app, ["serve", "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "STICKER_MAKER_SAFETY_BLOCK_FILES" in said and "gone.txt' cannot be read" in said


def test_the_sdk_raises_an_invalid_request_with_the_code(make_client) -> None:
    import sticker_maker as sm

    client: Client = make_client()
    key = client.new_key()
    with (
        sm.Client("http://testserver", key, http_client=client) as sdk,
        pytest.raises(sm.InvalidRequestError) as refused,
    ):
        sdk.submit("p0rn sticker", preset="sticker-maker")
    assert refused.value.status_code == 422 and refused.value.code == "content_blocked"
    assert sdk.submit("a cute cat", preset="sticker-maker").error_code is None
