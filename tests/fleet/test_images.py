"""The Dockerfile, the compose file and the manifests agree with the CLI and each other.

No Docker here, so the image is not built; what can be checked without it is: every
command the manifests and the compose file give the image parses with the real CLI
(an unknown flag fails), the image's user is the numeric non-root uid the pods ask for,
torch comes at the version constraints.txt pins, and grace periods cover the drain.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from fleet.manifests import REPO, find, flag, kubectl, render
from sticker_maker.worker.runner import HAND_BACK_SECONDS

DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())


def parses(args: list[str]) -> None:
    """``sticker-maker ARGS --help`` exits 0: the subcommand and every flag exist."""
    done = subprocess.run(
        [sys.executable, "-m", "sticker_maker", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (args, done.stdout[-1500:], done.stderr[-1500:])


def test_dockerfile_runs_as_a_numeric_non_root_user_with_the_pinned_torch() -> None:
    user = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert user == ["10001:10001"]
    assert re.search(r'^ENTRYPOINT \["sticker-maker"\]', DOCKERFILE, re.M)
    assert "torch==$(sed -n 's/^torch==//p' constraints.txt)" in DOCKERFILE
    assert re.search(r"^torch==2\.13\.0$", (REPO / "constraints.txt").read_text(), re.M)
    assert "cu124" not in DOCKERFILE  # no CUDA 12.4 build of torch 2.13 exists
    assert "gcc libc6-dev" in DOCKERFILE  # Triton compiles its launcher (torch.compile)
    assert "torchvision" not in DOCKERFILE.replace("never torchvision", "")


@pytest.mark.skipif(kubectl() is None, reason="kubectl not installed (dev extra)")
def test_manifest_commands_parse_and_match_the_image() -> None:
    docs = render("overlays/cluster")
    for name in ("sticker-maker-api", "sticker-maker-worker"):
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001
        parses(pod["containers"][0]["args"])
    parses(
        find(docs, "Job", "sticker-maker-migrate")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
    )


def test_compose_commands_parse_and_its_grace_covers_the_drain() -> None:
    services = COMPOSE["services"]
    for name in ("migrate", "api", "worker"):
        parses(services[name]["command"])
    worker = services["worker"]
    drain = float(flag(worker["command"], "drain-timeout"))
    grace = float(worker["stop_grace_period"].removesuffix("s"))
    assert grace >= drain + HAND_BACK_SECONDS
