"""ML libraries' warnings and progress bars are off in ``serve``/``worker`` unless
``--verbose`` (``STICKER_MAKER_VERBOSE=1``), in the process and in what it spawns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sticker_maker.cli.main import app

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import subprocess, sys, warnings
from sticker_maker.quiet import quiet_ml_libraries
quiet_ml_libraries()
from diffusers.utils import logging as diffusers_logging
diffusers_logging.get_logger("diffusers.pipelines").warning("LOUD-LOG")
warnings.warn_explicit("DEPRECATED-API", FutureWarning, "x.py", 1, module="transformers.x")
from tqdm import tqdm
list(tqdm(range(3), desc="BAR-HERE"))
# the model process is spawned with this process's environment
child = "from tqdm import tqdm; list(tqdm(range(3), desc='CHILD-BAR'))"
subprocess.run([sys.executable, "-c", child], check=True)
"""


def _run(verbose: bool) -> str:
    from sticker_maker.quiet import QUIET_ENV, VERBOSE_ENV

    # as a fresh shell has it (another test may have quieted this process already)
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != VERBOSE_ENV}
    if verbose:
        env["STICKER_MAKER_VERBOSE"] = "1"
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_ml_library_output_only_when_verbose(verbose: bool) -> None:
    said = _run(verbose)
    for word in ("LOUD-LOG", "DEPRECATED-API", "BAR-HERE", "CHILD-BAR"):
        assert (word in said) is verbose, (word, said)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_take_verbose(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "--verbose" in result.output
    assert "STICKER_MAKER_VERBOSE=1" in " ".join(result.output.split())
