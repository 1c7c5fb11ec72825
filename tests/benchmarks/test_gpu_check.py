"""``bench/gpu_check.py`` (``make gpu-check``) cannot rot: its ``--device cpu`` dry run runs
every section on the tiny SDXL, and its table fails soft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402


def test_a_failing_row_is_reported_and_the_table_goes_on() -> None:
    table = gpu_check.Table(budget=60)

    def broken() -> list:
        raise RuntimeError("CUDA out of memory. Tried to allocate 3.8 GiB\nmore detail")

    table.attempt("(c)", "big batches", broken)
    table.attempt("(c)", "joins", lambda: [("join vs alone: Euler", "max |Δ| 0", "", True)])
    assert [(r.check, r.value, r.ok) for r in table.rows] == [
        ("big batches", "error", False),
        ("join vs alone: Euler", "max |Δ| 0", True),
    ]
    assert table.rows[0].note == "RuntimeError: CUDA out of memory. Tried to allocate 3.8 GiB"
    text = table.render("header")
    assert "FAIL" in text and "join vs alone: Euler" in text


def test_rows_the_budget_no_longer_allows_are_skipped() -> None:
    table = gpu_check.Table(budget=10)
    ran = []
    table.attempt("(b)", "service, compile on", lambda: ran.append(1) or [], needs=150)
    assert ran == []
    assert table.rows[0].value == "skipped" and "budget" in table.rows[0].note


@pytest.mark.slow
@pytest.mark.heavy
def test_cpu_dry_run_runs_every_section(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "STICKER_MAKER_BENCH_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), *("--device", "cpu", "--json", out)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    checks = {r["check"]: r for r in rows}
    errors = [r for r in rows if r["value"] == "error"]
    assert errors == []
    assert {r["section"] for r in rows} == {"(a)", "(b)", "(c)"}
    for name in (
        "suite on cpu: finishing",
        "64² 2-step sticker, batch 1, compile off",
        "2 concurrent 2-step jobs, compile off",
        "4-step preset sticker-maker-fast, batch 1",
        "per step: LoRA (unfused) vs none",
        "VAE decode, 1 image",
        "1 job: peak memory steps / decode",
        "then one more job",
        "join vs alone: DPM++ 2M SDE Karras",
        "LoRA A ↔ B ↔ 0 cycles",
        "offload model: step after a decode vs others",
        "reference job, first (IP-Adapter load)",
        "reference + prompt-only jobs in one loop",
    ):
        assert name in checks, name
        assert checks[name]["value"] != "skipped", name
    # what the CPU can check for real: pixels of joiners, pristine weights, finite images
    assert checks["join vs alone: Euler"]["ok"] is True
    assert checks["LoRA A ↔ B ↔ 0 cycles"]["ok"] is True
    assert checks["1 job: peak memory steps / decode"]["ok"] is True
    assert checks["reference + prompt-only jobs in one loop"]["ok"] is True
    assert "GPU check on" in done.stdout and "rows, 0 failed" in done.stdout
