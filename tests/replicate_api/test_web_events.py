"""The web page's job watcher (``web/jobs.js``) follows the event stream, run under Node
against the app (its ``api.js`` and ``ui.js`` replaced by stubs: no browser needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from replicate_api.conftest import App

WEB = Path(__file__).resolve().parents[2] / "sticker_maker" / "web"
NODE = shutil.which("node")

API_STUB = """
export const seen = [];
export async function api(path, { raw = false, signal } = {}) {
  seen.push(path);
  const url = process.env.ROOT + "/" + (path.includes("/events") && process.env.HIDE
    ? "v1/no-such-route" : path);
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${process.env.KEY}` }, signal });
  if (!response.ok) { const e = new Error("http"); e.status = response.status; throw e; }
  return raw ? response : response.json();
}
"""
UI_STUB = """
export const $ = () => null;
export const announce = () => {};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
"""
MAIN = """
import { watchJob } from "./jobs.js";
import { seen } from "./api.js";
const updates = [];
const job = await watchJob({ id: process.env.JOB, status: "queued" },
  { onUpdate: (j) => updates.push(j.status) });
console.log(JSON.stringify({ status: job.status, updates, seen }));
"""


def _watch(app: App, tmp_path: Path, job_id: str, hide: bool) -> dict:
    shutil.copy(WEB / "jobs.js", tmp_path / "jobs.js")
    (tmp_path / "api.js").write_text(API_STUB)
    (tmp_path / "ui.js").write_text(UI_STUB)
    (tmp_path / "main.mjs").write_text(MAIN)
    env = {"ROOT": app.root, "KEY": app.token, "JOB": job_id, "PATH": "/usr/bin:/bin"}
    if hide:
        env["HIDE"] = "1"
    done = subprocess.run(
        [NODE or "node", str(tmp_path / "main.mjs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
@pytest.mark.parametrize("hide", [False, True], ids=["events", "polling"])
def test_web_watcher_follows_events_or_polls(app: App, tmp_path: Path, hide: bool) -> None:
    job_id = app.http.post("/v1/jobs", json={"prompt": "x", "preset": "tiny"}).json()["id"]
    threading.Timer(0.8, app.play_worker).start()
    result = _watch(app, tmp_path, job_id, hide)
    assert result["status"] == "succeeded" and result["updates"][-1] == "succeeded"
    if hide:
        assert f"v1/jobs/{job_id}" in result["seen"]  # fell back to polling
    else:
        assert result["seen"] == [f"v1/jobs/{job_id}/events"]  # one stream, no polls
        assert result["updates"][0] == "queued"
