"""Where the benches find their artwork with exact ground truth."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dataset(name: str, env: str) -> Path:
    """``$env``, else the full set at ``<repo>/../shared/data/<name>``, else the subset the
    tests use, ``tests/data/<name>`` (always in the repository)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    full = REPO / ".." / "shared" / "data" / name
    if (full / "composite" / "manifest.json").is_file():
        return full
    return REPO / "tests" / "data" / name
