"""A small tmpfs to fill up: a real full disk for the fault tests (root only)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``; skips the test where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Write a file under ``path`` until the disk is full; returns it (delete it to free)."""
    filler = path / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as fh:
        while True:
            try:
                fh.write(block)
                fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # the last partial blocks too
    with contextlib.suppress(OSError), filler.open("ab") as fh:
        for _ in range(64):
            fh.write(b"\0" * 512)
            fh.flush()
    os.sync()
    return filler
