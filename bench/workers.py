"""Jobs per second through the queue with 1, 2 and 3 real worker processes and the tiny model.

    python bench/workers.py [--jobs 120] [--workers 1,2,3] [--database sqlite|postgresql]
                          [--storage local|s3] [--repeat 1]

For each worker count: a fresh database (a new SQLite file, or a new database on
``$STICKER_MAKER_TEST_POSTGRES``, see ``tests/pg.py``),
that many ``sticker-maker worker`` processes, started and idle; then ``--jobs`` jobs
are queued at once (the tiny SDXL built by ``tests/tiny_models.py``, 64x64, 2 steps)
and the clock runs from the first submit to the last job's end. It prints jobs/s,
the median queue wait and the mean predict time (model seconds per job), so the
queue's own overhead shows: ``1 / jobs_per_s - predict`` per worker.

Workers run with ``OMP_NUM_THREADS=1`` (one core each for torch). On a machine with
fewer cores than workers, expect the curve to flatten at the core count.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where "queue" would be
# this file instead of the standard library module that torch and others import.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

REPO = _HERE.parent
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _presets() -> Path:
    from bench._tiny import tiny_presets  # the tiny models, built once into .cache/bench

    return tiny_presets()


def run_once(
    root: Path,
    presets: Path,
    n_workers: int,
    n_jobs: int,
    database: str,
    storage: str | None,
    extra_env: dict[str, str],
) -> dict[str, float]:
    from scale.cluster import Cluster, create_database, drop_database, postgres_server

    from sticker_maker.accounts import KeyStore
    from sticker_maker.db import Database
    from sticker_maker.jobs import JobStatus, JobStore
    from sticker_maker.jobs.workers import WorkerRegistry
    from sticker_maker.params import GenerationRequest, resolve
    from sticker_maker.presets import load_presets

    if database == "postgresql":
        server = postgres_server()
        if server is None:
            import pg

            raise SystemExit(f"PostgreSQL cannot be used: {pg.problem()}")
        url = create_database(server, "bench")
    else:
        url = f"sqlite:///{root / f'bench-{n_workers}.db'}"
    cluster = Cluster(
        root / f"cluster-{n_workers}",
        presets,
        url,
        storage or str(root / f"files-{n_workers}"),
        env={"OMP_NUM_THREADS": "1", "STICKER_MAKER_HEARTBEAT_INTERVAL": "1", **extra_env},
    )
    db = Database(url)
    try:
        db.upgrade()
        store, registry = JobStore(db), WorkerRegistry(db)
        key = KeyStore(db).create(credits=1e9).key.id
        registry_ids = [f"bench-w{i}" for i in range(n_workers)]
        for name in registry_ids:
            cluster.worker(name)
        deadline = time.monotonic() + 180
        while sum(w.state == "idle" for w in registry.all()) < n_workers:
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start: see " + str(cluster.root))
            time.sleep(0.2)
        registry_presets = load_presets(presets)
        inputs = [
            resolve(
                GenerationRequest(prompt=f"bench {i}", preset="tiny", steps=2, seed=i),
                registry_presets,
            )
            for i in range(n_jobs)
        ]
        t0 = time.monotonic()
        ids = [store.submit(key, job_input).id for job_input in inputs]
        while True:
            done = [store.get(i) for i in ids]
            if all(j.status.is_terminal for j in done):
                break
            time.sleep(0.1)
        seconds = time.monotonic() - t0
        failed = [j for j in done if j.status is not JobStatus.SUCCEEDED]
        if failed:
            raise SystemExit(f"{len(failed)} jobs failed, e.g. {failed[0].error}")
        waits = [j.queue_time or 0.0 for j in done]
        predicts = [j.predict_time or 0.0 for j in done]
        return {
            "workers": n_workers,
            "jobs": n_jobs,
            "seconds": seconds,
            "jobs_per_s": n_jobs / seconds,
            "queue_wait_p50": statistics.median(waits),
            "predict_mean": statistics.fmean(predicts),
        }
    finally:
        cluster.close()
        db.dispose()
        if database == "postgresql":
            drop_database(url)


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=120, help="jobs per run (default 120)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts (default 1,2,3)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--storage", choices=("local", "s3"), default="local")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count (best kept)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="sm-bench-queue-") as tmp:
        root = Path(tmp)
        presets = _presets()
        storage_url, extra_env, s3 = None, {}, None
        if args.storage == "s3":
            from scale.cluster import SeaweedS3

            s3 = SeaweedS3(root / "s3")
            storage_url, extra_env = s3.url("bench"), s3.env
        try:
            print(
                f"queue throughput: tiny SDXL 64x64, 2 steps, {args.jobs} jobs queued at once; "
                f"{args.database} + {args.storage} storage; {os.cpu_count()} CPUs, "
                f"{platform.python_implementation()} {platform.python_version()}"
            )
            print(f"{'workers':>7} {'seconds':>8} {'jobs/s':>7} {'wait p50':>9} {'predict':>8}")
            results = []
            for n in counts:
                runs = [
                    run_once(
                        root / f"run-{n}-{r}",
                        presets,
                        n,
                        args.jobs,
                        args.database,
                        storage_url,
                        extra_env,
                    )
                    for r in range(args.repeat)
                ]
                best = max(runs, key=lambda r: r["jobs_per_s"])
                results.append(best)
                print(
                    f"{n:>7} {best['seconds']:>8.1f} {best['jobs_per_s']:>7.2f} "
                    f"{best['queue_wait_p50']:>8.1f}s {best['predict_mean']:>7.3f}s",
                    flush=True,
                )
        finally:
            if s3 is not None:
                s3.close()
    return results


if __name__ == "__main__":
    main()
