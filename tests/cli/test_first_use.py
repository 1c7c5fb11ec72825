"""First use: the start-up banner's key command makes a key whose first job is accepted,
and a key made without credits says how to grant some."""

from __future__ import annotations

import shlex

import httpx
from conftest import RunningServer, cli


def test_the_banners_command_makes_a_key_that_can_run_a_job(shared_server: RunningServer) -> None:
    banner = shared_server.log.read_text()
    said = banner.split("Create a key with: ", 1)[1].splitlines()[0].strip()
    program, *args = shlex.split(said)
    assert program == "sticker-maker"
    if "--home" not in args:
        args += ["--home", str(shared_server.home)]
    made = cli(*args, home=shared_server.home)
    key = made.stdout.strip()
    assert key.startswith("sm_"), made.stderr
    r = httpx.post(
        f"{shared_server.url}/v1/jobs",
        headers={"Authorization": f"Bearer {key}"},
        json={"prompt": "cute cat", "preset": "tiny"},
        timeout=60,
    )
    assert r.status_code == 201, r.text  # not 406 Insufficient credits
    httpx.post(f"{r.json()['urls']['cancel']}", headers={"Authorization": f"Bearer {key}"})


def test_a_key_without_credits_says_how_to_grant_some(shared_server: RunningServer) -> None:
    made = cli("keys", "create", "--label", "nocredit", home=shared_server.home)
    secret = made.stdout.strip()
    prefix = secret[: secret.index("_", 3)]  # sm_<id>
    assert f"sticker-maker keys grant {prefix} 1000" in " ".join(made.stderr.split())
