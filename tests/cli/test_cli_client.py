"""The CLI as a client: ``generate --server`` and ``jobs list|show|cancel`` on a real server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import RunningServer, cli
from PIL import Image
from typer.testing import CliRunner

from sticker_maker.cli.main import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def key(shared_server: RunningServer) -> str:
    return shared_server.new_key()


@pytest.fixture
def runner(shared_server: RunningServer, key: str) -> CliRunner:
    """In-process runs of the real typer app, with the service URL and key in the environment."""
    return CliRunner(env={"STICKER_MAKER_URL": shared_server.url, "STICKER_MAKER_API_KEY": key})


def test_generate_on_the_server_saves_files(
    shared_server: RunningServer, key: str, tmp_path: Path
) -> None:
    """The real command in a subprocess, with flags instead of the environment."""
    out = tmp_path / "stickers"
    result = cli(
        "generate", "cute cat", "--server", shared_server.url, "--api-key", key,
        "--preset", "tiny", "--seed", "5", "--samples", "2", "-o", str(out),
        home=tmp_path / "client-home",
    )  # fmt: skip
    names = [Path(line).name for line in result.stdout.split()]
    assert names == [
        "cute-cat-5.png",
        "cute-cat-5-sticker.png",
        "cute-cat-6.png",
        "cute-cat-6-sticker.png",
    ]
    assert Image.open(out / "cute-cat-6-sticker.png").mode == "RGBA"
    assert "job " in result.stderr and "succeeded" in result.stderr and "4/4" in result.stderr
    assert not (tmp_path / "client-home").exists(), "a client run keeps no local state"


def test_jobs_list_show_cancel(runner: CliRunner, tmp_path: Path) -> None:
    made = runner.invoke(
        app, ["generate", "a fox", "--preset", "t", "--seed", "8", "-o", str(tmp_path)]
    )
    assert made.exit_code == 0, made.output
    assert (tmp_path / "a-fox-8-sticker.png").is_file()

    listed = runner.invoke(app, ["jobs", "list", "--json"])
    assert listed.exit_code == 0
    newest = json.loads(listed.stdout)[0]
    assert newest["input"]["prompt"] == "a fox" and newest["status"] == "succeeded"
    job_id = newest["id"]

    table = runner.invoke(app, ["jobs", "list", "--limit", "3"])
    assert job_id in table.stdout and "a fox" in table.stdout

    shown = runner.invoke(app, ["jobs", "show", job_id])
    assert shown.exit_code == 0
    for text in (job_id, "succeeded", "seed", "8", "4/4", "predict time", "sticker 0"):
        assert text in shown.stdout

    canceled = runner.invoke(app, ["jobs", "cancel", job_id])
    assert canceled.exit_code == 0 and "already finished" in canceled.output


def test_generate_holes_option_reaches_the_job(runner: CliRunner, tmp_path: Path) -> None:
    made = runner.invoke(
        app,
        [
            "generate",
            "a ring",
            "--preset",
            "t",
            "--seed",
            "3",
            "--holes",
            "keep",
            "-o",
            str(tmp_path),
        ],
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    newest = json.loads(listed.stdout)[0]
    assert newest["input"]["prompt"] == "a ring"
    # the bare cut-out on the image's canvas, as without finishing, holes filled
    assert newest["input"]["finishing"] == {
        "remover": "auto",
        "border": 0,
        "shadow": False,
        "trim": False,
        "holes": "keep",
    }
    sticker = Image.open(tmp_path / "a-ring-3-sticker.png")
    assert sticker.size == Image.open(tmp_path / "a-ring-3.png").size
    bad = runner.invoke(app, ["generate", "x", "--holes", "fill", "-o", str(tmp_path)])
    assert bad.exit_code != 0 and "fill" in bad.output


def test_client_errors_are_one_line_without_traceback(
    runner: CliRunner, shared_server: RunningServer, tmp_path: Path
) -> None:
    missing = runner.invoke(app, ["jobs", "show", "no-such-job"])
    assert missing.exit_code == 1
    assert "error: job no-such-job not found" in missing.output
    assert "Traceback" not in missing.output

    wrong = runner.invoke(app, ["jobs", "list", "--api-key", "sm_wrong"])
    assert wrong.exit_code == 1 and "invalid API key" in wrong.output

    failed = runner.invoke(app, ["generate", "x", "--preset", "missing-model", "-o", str(tmp_path)])
    assert failed.exit_code == 1
    assert "no-such-owner/no-such-sdxl-model" in failed.output
    assert list(tmp_path.iterdir()) == []

    invalid = runner.invoke(app, ["generate", "x", "--preset", "tiny", "--width", "100"])
    assert invalid.exit_code == 1 and "width: 100 must be a multiple of 8" in invalid.output


def test_help_documents_the_client_options() -> None:
    result = CliRunner().invoke(app, ["generate", "--help"])
    assert "--server" in result.output and "STICKER_MAKER_URL" in result.output
    result = CliRunner().invoke(app, ["jobs", "--help"])
    for command in ("list", "show", "cancel"):
        assert command in result.output


def test_ctrl_c_while_waiting_cancels_the_job_on_the_service(
    runner: CliRunner, shared_server: RunningServer, key: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C (KeyboardInterrupt) during a remote ``generate`` cancels the job there."""
    import httpx

    from sticker_maker.cli import client_cmds

    def interrupted(job):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # what Ctrl-C raises while the CLI waits

    monkeypatch.setattr(client_cmds, "_wait_with_progress", interrupted)
    result = runner.invoke(
        app, ["generate", "a long one", "--preset", "tiny", "--steps", "100", "-o", str(tmp_path)]
    )
    assert result.exit_code != 0
    job_id = result.stderr.split("job ", 1)[1].split()[0]
    assert f"canceled job {job_id}" in result.stderr
    deadline = time.monotonic() + 300  # a guard against a hang, not a timing assertion
    while True:  # a queued job ends at once, a running one at its next step
        url = f"{shared_server.url}/v1/jobs/{job_id}"
        job = httpx.get(url, headers={"x-api-key": key}).json()
        if job["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "canceled" and not job["output"]
