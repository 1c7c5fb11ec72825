"""Section (a) of ``bench/gpu_check.py``: the suite's engine, lane, batching, upscale and
finishing tests on the device (``STICKER_MAKER_TEST_DEVICE``, see ``tests/devices.py``), in
one pytest session started in the background, summed up by group from its JUnit report."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
Row = tuple[str, str, str, bool | None]


SUITE: dict[str, list[str]] = {
    "engine": ["tests/engine/test_engine.py::"],
    "denoising lanes": ["tests/engine/test_batching.py"],
    "batching (model process)": [
        "tests/worker/test_batching.py",
        "tests/worker/test_child_protocol.py",
    ],
    "upscale": ["tests/engine/test_tiles_and_options.py"],
    "finishing": ["tests/finishing/test_cutout.py", "tests/finishing/test_diecut.py"],
}


def _group(nodeid: str) -> str:
    if "upscale" in nodeid or "refine" in nodeid:
        return "upscale"
    for name, paths in SUITE.items():
        if any(nodeid.startswith(p.removesuffix("::")) for p in paths):
            return name
    return "other"


class Suite:
    """One pytest session over the groups, started in the background (it needs no timing, so
    it runs while the full-size weights are built); rows by group from its JUnit report.
    The CPU dry run runs only the finishing die-cut tests (the rest is collected elsewhere)."""

    def __init__(self, profile: Any) -> None:
        self.profile = profile
        self.tmp = tempfile.TemporaryDirectory()
        self.report = Path(self.tmp.name) / "junit.xml"
        files = sorted({p.removesuffix("::") for paths in SUITE.values() for p in paths})
        if profile.device == "cpu":
            files = ["tests/finishing/test_diecut.py"]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
        cmd += ["--junitxml", str(self.report), *files]
        env = {
            **os.environ,
            "STICKER_MAKER_TEST_DEVICE": profile.device,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
            ),
        }
        self.log = Path(self.tmp.name) / "pytest.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def finish(self, timeout: float) -> list[Row]:
        try:
            self.process.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            return [("suite", "timed out", f"budget; last output: {tail}", False)]
        except BaseException:
            self.process.kill()
            raise
        try:
            if not self.report.exists():
                return [("suite", "error", self.log.read_text()[-300:], False)]
            return [
                (
                    f"suite on {self.profile.device}: {name}",
                    f"{g['passed']} passed, {g['failed']} failed, {g['skipped']} skipped",
                    g["first"],
                    g["failed"] == 0 and g["passed"] > 0,
                )
                for name, g in sorted(suite_groups(self.report).items())
            ]
        finally:
            self.tmp.cleanup()


def suite_groups(report: Path) -> dict[str, dict[str, Any]]:
    """Passed/failed/skipped per group (and the first failure) from a JUnit XML report."""
    import xml.etree.ElementTree as ET

    groups: dict[str, dict[str, Any]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        nodeid = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        g = groups.setdefault(_group(nodeid), {"passed": 0, "failed": 0, "skipped": 0, "first": ""})
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            g["failed"] += 1
            first = (failure.get("message") or "").splitlines()[:1]
            g["first"] = g["first"] or f"{case.get('name')}: {first[0][:150] if first else ''}"
        elif case.find("skipped") is not None:
            g["skipped"] += 1
        else:
            g["passed"] += 1
    return groups
