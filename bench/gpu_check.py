"""GPU check (``make gpu-check``): one table of what runs on an H100/H200-class GPU, ≤ 8 min.

    python bench/gpu_check.py                 # CUDA: full-size SDXL (built here, random weights)
    python bench/gpu_check.py --device cpu    # dry run: the tiny SDXL, same code (the tests run it)

Sections (each row fails soft: its error goes in the table and the script goes on; rows that
the time budget, ``--budget`` seconds, no longer allows are listed as skipped):

(a) the suite's engine, denoising-lane, batching, upscale and finishing tests on the device
    (``STICKER_MAKER_TEST_DEVICE``; float16 on CUDA), with the tiny models; on the CPU dry
    run only collected;
(b) the full-size model (``bench/_sdxl.py``: SDXL's published architecture, a rank-64 kohya
    sticker LoRA) end to end through ``sticker-maker serve`` (submit → PNG and cut-out in
    storage): seconds per sticker at batch 1 with torch.compile off and on, stickers/s with 4
    and 8 concurrent jobs, the 4-step preset; in process: a fused LoRA against none per step,
    VAE decode and cut-out ms, peak VRAM; each beside the hosted 13-16 s, the 0.28 s floor and
    issue 13's targets; a job with a reference picture (``face-to-sticker``: IP-Adapter
    plus-face and its ViT-H image encoder, real architecture, random weights:
    ``bench/_gpu_reference.py``) against a prompt-only one, alone and in one loop;
(c) the five defect checks of issue 13 (memory during steps and decode; 4 jobs x 4 samples
    and 8 lanes then one more job; joining lanes against alone for four samplers; LoRA
    A ↔ B ↔ 0 cycles against pristine weights; compile recompiles, then offload).

The GPU machine has torch but not our other dependencies: ``make gpu-wheels`` fetches them
into ``.whl/`` where the registries are reachable (README, "GPU check").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import _gpu_engine as ge  # noqa: E402
import _gpu_reference  # noqa: E402
import _sdxl  # noqa: E402
import fullsize  # noqa: E402
from _gpu_suite import Suite  # noqa: E402

ANCHORS = "hosted 13-16 s; floor 0.28 s"
TINY = HERE / "configs" / "sdxl-tiny.json"
#: the worker's log line of a job that shared its steps
BATCHED = r"in a batch of up to (\d+) jobs"


@dataclass(frozen=True)
class Profile:
    device: str
    config: Path
    size: int
    steps: int
    short_steps: int
    concurrency: tuple[int, ...]
    rank: int
    budget: float
    #: the compile rows need a GPU (inductor on 2 CPU cores takes minutes)
    compile: bool
    #: timed jobs per batch-1 figure (the median is reported)
    repeats: int


PROFILES = {
    "cuda": Profile("cuda", _sdxl.CONFIG, 1024, 20, 6, (4, 8), 64, 470.0, True, 3),
    "cpu": Profile("cpu", TINY, 64, 2, 2, (2,), 8, 900.0, False, 1),
}


@dataclass
class Row:
    section: str
    check: str
    value: str
    note: str = ""
    ok: bool | None = None
    seconds: float = 0.0


@dataclass
class Table:
    budget: float
    started: float = field(default_factory=time.perf_counter)
    rows: list[Row] = field(default_factory=list)
    #: where the rows are written after every check (so a killed run leaves what it had)
    json_path: Path | None = None

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.started)

    def attempt(
        self, section: str, check: str, fn: Callable[[], list[ge.Row]], needs: float = 0.0
    ) -> None:
        """Run ``fn`` (its rows go in the table) unless less than ``needs`` s are left;
        an exception becomes an error row."""
        if self.left() < max(needs, 1.0):
            self.rows.append(
                Row(section, check, "skipped", f"time budget: {self.left():.0f} s left", None)
            )
            return
        began = time.perf_counter()
        try:
            produced = fn()
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            text = (str(exc).strip().splitlines() or [""])[0][:200]
            produced = [(check, "error", f"{type(exc).__name__}: {text}", False)]
        spent = time.perf_counter() - began
        for name, value, note, ok in produced:
            self.rows.append(Row(section, name, value, note, ok, spent / len(produced)))
            print(
                f"[{time.perf_counter() - self.started:6.1f} s] {section} {name}: {value}",
                flush=True,
            )
        self.save()

    def save(self) -> None:
        if self.json_path is not None:
            self.json_path.write_text(json.dumps([asdict(r) for r in self.rows], indent=2))

    def render(self, header: str) -> str:
        marks = {True: "ok", False: "FAIL", None: ""}
        cols = [("section", 8), ("check", 44), ("value", 44), ("ok", 4)]
        lines = [header, "  ".join(n.ljust(w) for n, w in cols) + "  note"]
        for r in self.rows:
            cells = [r.section, r.check, r.value, marks[r.ok]]
            line = "  ".join(c.ljust(w) for c, (_, w) in zip(cells, cols, strict=True))
            lines.append(f"{line}  {r.note}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- (b) service


class Service:
    """``sticker-maker serve`` on a free port with the full-size presets; jobs through the
    native API, each checked for its PNG and cut-out in storage."""

    def __init__(self, presets: Path, home: Path, *flags: str) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import start_server  # type: ignore[import-not-found]

        self.server = start_server(home, presets, *flags)
        import httpx

        key = self.server.new_key(credits=1e12)
        self.client = httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def close(self) -> None:
        from conftest import stop_server  # type: ignore[import-not-found]

        self.client.close()
        stop_server(self.server)

    def submit(self, **fields: Any) -> str:
        body = {"prompt": "a cute cat", "seed": 1, **fields}
        answer = self.client.post("/v1/jobs", json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def wait(self, ids: list[str], timeout: float) -> list[dict[str, Any]]:
        deadline, done = time.monotonic() + timeout, {}
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} jobs unfinished")
            for job_id in ids:
                if job_id in done:
                    continue
                env = self.client.get(f"/v1/jobs/{job_id}").json()
                if env["status"] in ("succeeded", "failed", "canceled"):
                    env["seen_at"] = time.perf_counter()
                    done[job_id] = env
            time.sleep(0.01)
        return [done[i] for i in ids]

    def check(self, envelope: dict[str, Any]) -> None:
        """The job succeeded and storage serves its image PNG and its RGBA cut-out."""
        import io

        from PIL import Image

        if envelope["status"] != "succeeded":
            raise RuntimeError(f"job {envelope['status']}: {envelope.get('error')}")
        kinds = {o["kind"]: o["url"] for o in envelope["output"]}
        for kind, mode in (("image", "RGB"), ("sticker", "RGBA")):
            data = self.client.get(kinds[kind]).content
            image = Image.open(io.BytesIO(data))
            if image.format != "PNG" or image.mode != mode:
                raise RuntimeError(f"{kind}: {image.format} {image.mode}, want PNG {mode}")

    def run(self, count: int, timeout: float, **fields: Any) -> tuple[float, list[dict]]:
        """``count`` jobs submitted at once; seconds until the last one finished."""
        began = time.perf_counter()
        ids = [self.submit(**fields, seed=i + 1) for i in range(count)]
        envelopes = self.wait(ids, timeout)
        for envelope in envelopes:
            self.check(envelope)
        return max(e["seen_at"] for e in envelopes) - began, envelopes


def service_rows(profile: Profile, presets: Path, table: Table, compile_on: bool) -> list[ge.Row]:
    """Jobs through ``sticker-maker serve``; each measurement fails soft on its own."""
    size, steps, top = profile.size, profile.steps, max(profile.concurrency)
    flags = ["--max-batch", str(top), "--device", profile.device]
    flags += ["--compile"] if compile_on else []
    label = f"compile {'on' if compile_on else 'off'}"
    gpu = profile.device != "cpu"
    common = {"width": size, "height": size}
    rows: list[ge.Row] = []

    def measure(name: str, fn: Callable[[], ge.Row], needs: float = 20.0) -> None:
        if table.left() < needs:
            rows.append((name, "skipped", f"time budget: {table.left():.0f} s left", None))
            return
        try:
            rows.append(fn())
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            text = (str(exc).strip().splitlines() or [""])[0][:200]
            rows.append((name, "error", f"{type(exc).__name__}: {text}", False))

    def timeout() -> float:
        return max(30.0, table.left())

    def batch_one(name: str, preset: str | None, target: float | None, first: float) -> ge.Row:
        fields = {**common, **({"preset": preset} if preset else {"steps": steps})}
        seconds, envs = [], []
        for _ in range(profile.repeats):
            took, envs = service.run(1, timeout(), **fields)
            seconds.append(took)
        median = sorted(seconds)[len(seconds) // 2]
        predict = envs[0]["metrics"]["predict_time"]
        notes = [ANCHORS, f"target ≤ {target} s" if target else ""]
        notes.append(f"first job (load{' + compile' * compile_on}) {first:.1f} s" if first else "")
        ok = (median <= target) if target and gpu else None
        return (
            name,
            f"{median:.2f} s (predict {predict:.2f} s)",
            "; ".join(filter(None, notes)),
            ok,
        )

    def concurrent(name: str, count: int, preset: str | None, target: float | None) -> ge.Row:
        fields = {**common, **({"preset": preset} if preset else {"steps": steps})}
        took, envs = service.run(count, timeout(), **fields)
        logs = " ".join(e.get("logs") or "" for e in envs)
        batched = max([int(n) for n in re.findall(BATCHED, logs)] or [1])
        note = f"up to {batched} jobs per step" + (f"; target ≥ {target}/s" if target else "")
        ok = (count / took >= target) if target and gpu else None
        return (name, f"{count / took:.2f} stickers/s ({took:.1f} s)", note, ok)

    with tempfile.TemporaryDirectory() as tmp:
        service = Service(presets, Path(tmp) / "home", *flags)
        try:
            began = time.perf_counter()
            service.run(1, timeout(), steps=steps, **common)  # loads (and compiles)
            first = time.perf_counter() - began
            measure(
                f"{size}² {steps}-step sticker, batch 1, {label}",
                lambda: batch_one(
                    f"{size}² {steps}-step sticker, batch 1, {label}",
                    None,
                    1.0 if compile_on else None,
                    first,
                ),
            )
            for count in profile.concurrency if not compile_on else (top,):
                name = f"{count} concurrent {steps}-step jobs, {label}"
                target = 2.0 if count == 8 else None
                measure(name, lambda n=name, c=count, t=target: concurrent(n, c, None, t))
            if not compile_on:
                fast = "4-step preset sticker-maker-fast, batch 1"
                measure(fast, lambda: batch_one(fast, "sticker-maker-fast", 0.35, 0.0))
                name = f"4-step preset sticker-maker-fast, {top} concurrent"
                measure(name, lambda: concurrent(name, top, "sticker-maker-fast", 8.0))
        finally:
            service.close()
    return rows


# --------------------------------------------------------------------------- main


def prepare(profile: Profile) -> dict[str, Any]:
    """Weights (built once; cached), a second LoRA, the presets (``fullsize.prepare``)."""
    return fullsize.prepare(profile.config, profile.rank)


def run_checks(profile: Profile, table: Table, only: set[str]) -> dict[str, Any]:
    built: dict[str, Any] = {}
    suite = Suite(profile) if "suite" in only else None  # runs while the weights are built

    def build() -> list[ge.Row]:
        built.update(prepare(profile))
        counts = built["counts"]
        how = "cached" if built["cached"] else f"built in {built['build_seconds']:.0f} s"
        return [
            (
                "model: SDXL architecture, random weights",
                f"UNet {counts['unet']:,} params",
                f"{Path(built['config']).name}; kohya LoRA rank {built['lora_rank']}, "
                f"{built['lora_layers']['unet']} UNet + {built['lora_layers']['te1']} + "
                f"{built['lora_layers']['te2']} text layers; {how}",
                True,
            )
        ]

    table.attempt("(b)", "build", build)
    if suite is not None:  # before anything is timed on the device
        table.attempt("(a)", "suite", lambda: suite.finish(timeout=min(240.0, table.left() - 200)))
    if not built:
        return built
    presets = Path(built["presets"])
    setup = ge.Setup(
        presets, profile.device, "auto", profile.size, profile.steps, profile.short_steps
    )
    if "service" in only:
        table.attempt(
            "(b)",
            "service, compile off",
            lambda: service_rows(profile, presets, table, False),
            needs=60,
        )
    if "engine" in only or "defects" in only:
        eng: Any = None

        def load() -> list[ge.Row]:
            nonlocal eng
            began = time.perf_counter()
            eng = ge.engine(setup)
            eng.warm("sticker-maker")
            return [("engine: load base + LoRA", f"{time.perf_counter() - began:.1f} s", "", None)]

        table.attempt("(b)", "engine load", load, needs=30)
        if eng is not None:
            if "engine" in only:
                table.attempt("(b)", "per step", lambda: ge.per_step_rows(eng, setup), needs=20)
            if "defects" in only:
                for name, fn, needs in (
                    ("memory", ge.memory_rows, 15),
                    ("big batches", ge.big_batch_rows, 45),
                    ("joins", ge.join_rows, 40),
                    ("LoRA cycles", ge.lora_cycle_rows, 40),
                ):
                    table.attempt("(c)", name, lambda fn=fn: fn(eng, setup), needs=needs)
            ge.drop(eng)
            eng = None
    if "reference" in only:
        full = profile.device != "cpu"
        table.attempt(
            "(b)",
            "reference picture",
            lambda: _gpu_reference.rows(setup, built, full),
            needs=60 if full else 10,
        )
    if "service" in only and profile.compile:
        table.attempt(
            "(b)",
            "service, compile on",
            lambda: service_rows(profile, presets, table, True),
            needs=150,
        )
    if "defects" in only:
        if profile.compile:
            table.attempt("(c)", "compile", lambda: ge.compile_rows(setup, table.left), needs=120)
        else:
            table.rows.append(Row("(c)", "compile recompiles", "skipped", "dry run: needs a GPU"))
        table.attempt("(c)", "offload", lambda: ge.offload_rows(setup), needs=30)
    return built


def header(profile: Profile) -> str:
    import torch

    device = torch.cuda.get_device_name(0) if profile.device == "cuda" else platform.processor()
    return (
        f"GPU check on {device or platform.machine()} ({os.cpu_count()} CPUs), torch "
        f"{torch.__version__}, {profile.size}² x {profile.steps} steps, budget "
        f"{profile.budget:.0f} s, load {os.getloadavg()[0]:.1f}"
    )


class OutOfTime(Exception):
    """The time budget ran out in the middle of a check."""


def _out_of_time(_signum: int, _frame: Any) -> None:
    raise OutOfTime("the time budget ran out during this check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=sorted(PROFILES))
    parser.add_argument("--budget", type=float, default=None, help="seconds (cuda: 470)")
    parser.add_argument(
        "--only",
        default="suite,service,engine,reference,defects",
        help="sections to run (comma list)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no load reports per LoRA
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    profile = PROFILES[args.device]
    if profile.device == "cpu":  # tiny models: one thread each (the server's too) is fastest
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
    if args.budget is not None:
        profile = Profile(**{**asdict(profile), "budget": args.budget})
    table = Table(profile.budget, json_path=args.json)
    # A check that outlives the budget is interrupted (its row says so) and the rest skipped,
    # so the table is always printed within the budget plus a little.
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(int(profile.budget) + 20)
    try:
        run_checks(profile, table, set(args.only.split(",")))
    finally:
        signal.alarm(0)
    text = table.render(header(profile))
    print(text, flush=True)
    table.save()
    failed = sum(r.ok is False for r in table.rows)
    print(f"{len(table.rows)} rows, {failed} failed, {time.perf_counter() - table.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
