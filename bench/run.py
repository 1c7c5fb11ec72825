"""The benchmark suite (``make bench``): every benchmark, one table.

    python bench/run.py [--only overhead,batching,engine,cutout] [--json FILE]

Each part runs in its own process (the cut-out benchmark pins itself to one core; the
engine ones set torch threads), prints its rows as JSON, and this script prints them
all in one table with the machine, the versions and the load average beside each part
(the machine may be shared: compare figures taken at similar load). Each part is also
runnable alone: ``python bench/overhead.py``, ``bench/batching.py``, ``bench/engine.py``,
``bench/cutout.py``. Takes about 3 minutes on 2 idle CPU cores (2.8 min measured when
the suite was last timed); its last line says what this run took and the load around it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARTS = ("overhead", "batching", "engine", "cutout")


def _overhead() -> list[dict[str, Any]]:
    import overhead  # type: ignore[import-not-found]

    out = []
    runs = [(r, 1) for r in overhead.job_overhead((1, 8), jobs=40, max_batch=1)]
    runs += [(r, 8) for r in overhead.job_overhead((1, 8, 32), jobs=40, max_batch=8)]
    runs += [(r, 32) for r in overhead.job_overhead((32,), jobs=96, max_batch=32)]
    for r, bound in runs:
        c = r["concurrency"]
        setting = f"tiny model, {c} concurrent users (Prefer: wait), --max-batch {bound}"
        target = "target p50 <= 30, p99 <= 150" if c == 8 and bound > 1 else ""
        out += [
            _row("overhead", setting, r["p50_ms"], "ms p50", target),
            _row("overhead", setting, r["p95_ms"], "ms p95"),
            _row("overhead", setting, r["p99_ms"], "ms p99"),
            _row("overhead", setting, r["jobs_per_s"], "jobs/s", f"{r['failed']} failed"),
        ]
    t = overhead.api_throughput(3.0)
    for name, path in (("submits", "POST /v1/jobs"), ("polls", "GET /v1/jobs/{id}")):
        x = t[name]
        out.append(
            _row(
                "api",
                f"{name}: {path}, one API process, 16 connections",
                x["per_second"],
                "req/s",
                (">= 1000 " if name == "polls" else "")
                + f"(p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms, {x['errors']} errors)",
            )
        )
    return out


def _batching() -> list[dict[str, Any]]:
    import batching  # type: ignore[import-not-found]

    return batching.rows()


def _engine() -> list[dict[str, Any]]:
    import engine  # type: ignore[import-not-found]

    return engine.rows(repeats=2)


def _cutout() -> list[dict[str, Any]]:
    import statistics

    import cutout  # type: ignore[import-not-found]
    import numpy as np

    data = cutout.default_data()
    if not (data / "composite").is_dir():
        return [_row("cutout", f"no data at {data} (STICKER_MAKER_NOTO_DATA)", 0, "-")]
    pinning = cutout.single_core()
    kinds = cutout.bench_composites(data, 1)
    out = [
        _row(
            "cutout",
            f"model-free cut-out IoU, {r.kind} backdrop ({len(r.ious)} cases)",
            r.mean_iou,
            "IoU",
            f"target >= {cutout.TARGET_IOU[r.kind]}",
        )
        for r in kinds
    ]
    times = [t for r in kinds for t in r.times_ms]
    out.append(
        _row(
            "cutout",
            f"cut-out time per 1024² image, {pinning}",
            statistics.median(times),
            "ms p50",
            f"target <= {cutout.TARGET_MS:.0f}; p90 {np.percentile(times, 90):.0f} ms",
        )
    )
    for name in ("sheet", "sheet-outlined"):
        s = cutout.bench_sheets(data, name)
        if s is not None and s.sheets:
            out.append(
                _row(
                    "cutout",
                    f"sheet split, {name}: exact sticker count ({s.sheets} sheets)",
                    s.exact / s.sheets,
                    "share",
                    f"target >= {cutout.TARGET_COUNT_SHARE}",
                )
            )
    return out


def _row(bench: str, setting: str, value: float, unit: str, reference: str = "") -> dict:
    return {
        "bench": bench,
        "setting": setting,
        "value": value,
        "unit": unit,
        "reference": reference,
    }


def machine() -> list[str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    except (OSError, IndexError, ValueError):
        mem = 0.0
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    names = ("torch", "diffusers", "transformers", "fastapi", "uvicorn", "uvloop", "httptools")
    return [
        f"machine:  {cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB, {gpu}; "
        f"{platform.system()} {platform.release()}",
        f"versions: sticker-maker {version('sticker-maker')} ({commit or 'no git'}), "
        f"python {platform.python_version()}, " + ", ".join(f"{n} {version(n)}" for n in names),
        f"date:     {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]


def _part(name: str) -> None:
    """Child mode: run one part, print its rows as JSON on the last line."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO))
    rows = {"overhead": _overhead, "batching": _batching, "engine": _engine, "cutout": _cutout}[
        name
    ]()
    print("\n" + json.dumps(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help="parts, comma-separated")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        _part(args.part)
        return 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    table: list[dict[str, Any]] = []
    failed = []
    suite_started, suite_load = time.perf_counter(), os.getloadavg()[0]
    for name in args.only.split(","):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        print(f"running {name} (load average {load:.2f}) ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, str(HERE / "run.py"), "--part", name],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0:
            failed.append(name)
            print(done.stdout[-2000:] + done.stderr[-4000:], file=sys.stderr)
            continue
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        for r in rows:
            r["load"] = load
        table += rows
        print(f"  {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print("\n".join(machine()))
    print()
    width = max((len(r["setting"]) for r in table), default=10)
    print(f"{'bench':<9}{'setting':<{width}}  {'value':>10} {'unit':<7} {'load':>5}  reference")
    print("-" * (width + 50))
    for r in table:
        value = r["value"]
        shown = f"{value:>10.4g}" if isinstance(value, float) else f"{value:>10}"
        print(
            f"{r['bench']:<9}{r['setting']:<{width}}  {shown} {r['unit']:<7} "
            f"{r['load']:>5.2f}  {r['reference']}"
        )
    print(
        f"\nthe suite took {time.perf_counter() - suite_started:.0f} s "
        f"(load average {suite_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)"
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": table}, indent=1))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
