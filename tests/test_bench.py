"""The benchmark scripts stay runnable (their figures are printed by ``make bench``, never
asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_no_bench_module_shadows_the_standard_library() -> None:
    # ``python bench/x.py`` puts bench/ first on sys.path: a bench/queue.py would replace
    # the standard ``queue`` for torch and everything else the script imports.
    shadowing = [p.name for p in BENCH.glob("*.py") if p.stem in sys.stdlib_module_names]
    assert shadowing == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_help(script: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_the_readme_and_the_suite_say_the_same_duration() -> None:
    """One measured figure (bench/run.py prints what the suite took), said in both places."""
    import re

    readme = (BENCH.parent / "README.md").read_text()
    suite = (BENCH / "run.py").read_text()
    said = re.search(r"runs the benchmark suite in about ([\d.]+) minutes", readme)
    doc = re.search(r"Takes about ([\d.]+) minutes", suite)
    assert said and doc and said.group(1) == doc.group(1)
