"""Operations commands: ``worker`` (one per GPU) and ``db upgrade`` / ``db status``.

Registered on the main app by :func:`register`. Imports stay inside commands so
``--help`` is fast.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from sticker_maker.cli._options import VerboseOpt

err = Console(stderr=True)

db_app = typer.Typer(
    # plain help (click's): words are never cut, text is never read as markup
    rich_markup_mode=None,
    help="Database schema: apply migrations, show where a database stands.",
    no_args_is_help=True,
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL: sqlite:///PATH or postgresql://USER:PASS@HOST:5432/DB. "
        "Default: $STICKER_MAKER_DATABASE_URL, else SQLite under the home folder.",
        show_default=False,
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Where outputs go: a folder, or s3://BUCKET/PREFIX?endpoint=URL "
        "(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). "
        "Default: $STICKER_MAKER_STORAGE, else HOME/files.",
        show_default=False,
    ),
]
HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Folder for local state. Default: $STICKER_MAKER_HOME, "
        "else ~/.local/share/sticker-maker.",
        show_default=False,
    ),
]


def _fail(message: str) -> typer.Exit:
    # the message is text, not markup: "[presets.x]" must print as written
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(1)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def worker(
    home: HomeOpt = None,
    presets: Annotated[
        Path | None,
        typer.Option(
            help="Presets TOML file. Default: $STICKER_MAKER_PRESETS.", show_default=False
        ),
    ] = None,
    database: DatabaseOpt = None,
    storage: StorageOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this worker's Prometheus metrics on this port (/metrics).",
            show_default=False,
        ),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port.")] = "0.0.0.0",
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between heartbeats. Default: $STICKER_MAKER_HEARTBEAT_INTERVAL, else 10.",
            show_default=False,
        ),
    ] = None,
    lease_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds without a heartbeat before a running job is re-queued (use the same "
            "value everywhere). Default: $STICKER_MAKER_LEASE_TIMEOUT, else 30.",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between queue polls when idle (SQLite; PostgreSQL is woken by NOTIFY "
            "and polls 5x less). Default: $STICKER_MAKER_POLL_INTERVAL, else 1.",
            show_default=False,
        ),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option(
            help="On SIGTERM, seconds the running job may take to finish before it is handed "
            "back to the queue. A second SIGTERM (or Ctrl-C) hands it back at once.",
            min=0,
        ),
    ] = 30.0,
    device: Annotated[
        str | None,
        typer.Option(
            help="cuda, cuda:N, cpu or mps. Default: $STICKER_MAKER_DEVICE, else cuda if present "
            "(other engine settings: the STICKER_MAKER_* variables `serve --help` lists).",
            show_default=False,
        ),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="Name in metrics and logs. Default: HOST-PID-random.", show_default=False
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
    verbose: VerboseOpt = False,
) -> None:
    """Run a GPU worker in the foreground: claim jobs from the database, write outputs to storage.

    Start one per GPU, on as many machines as you like, all with the same --database and
    --storage as the API (`serve --no-worker`). SIGTERM stops it gracefully: no new jobs,
    the running one finishes (within --drain-timeout) or goes back to the queue.
    """
    from sticker_maker.quiet import quiet_ml_libraries

    quiet_ml_libraries(verbose or None)  # before the libraries are imported
    from sticker_maker.config import Settings
    from sticker_maker.db import Database
    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.errors import StickerMakerError
    from sticker_maker.jobs import JobStore
    from sticker_maker.jobs.reaper import Reaper
    from sticker_maker.storage import open_storage
    from sticker_maker.worker import Worker

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.load(
            home,
            presets=presets,
            database_url=database,
            storage=storage,
            heartbeat_interval=heartbeat_interval,
            lease_timeout=lease_timeout,
            poll_interval=poll_interval,
            engine=EngineOptions.from_env(device=device),
        )
        settings.ensure_dirs()
        db = Database(settings.database_url, pool_size=min(settings.db_pool_size, 3))
        db.upgrade()
        store_files = open_storage(settings.storage_url, settings.storage_dir)
        from sticker_maker.safety import verify_image_model

        verify_image_model(settings.safety)  # a classifier that does not load stops here
        if settings.engine.previews:  # so does a preview autoencoder
            from sticker_maker.engine.preview import verify_preview_vae

            verify_preview_vae(settings.engine.preview_vae)
    except StickerMakerError as exc:
        raise _fail(exc.message) from None
    except Exception as exc:
        raise _fail(f"cannot start the worker: {exc}") from None

    store = JobStore(db)
    runner = Worker(
        store,
        store_files,
        presets_file=str(settings.presets_file) if settings.presets_file else None,
        cache_size=settings.pipeline_cache_size,
        engine_options=settings.engine.to_dict(),
        poll_interval=settings.poll_interval,
        heartbeat_interval=settings.heartbeat_interval,
        drain_timeout=drain_timeout,
        worker_id=worker_id,
        max_batch=settings.max_batch or None,
        safety=settings.safety.to_dict(),
    )
    reaper = Reaper(store, lease_timeout=settings.lease_timeout, max_attempts=settings.max_attempts)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr=metrics_host)
        except OSError as exc:
            raise _fail(f"--metrics-port {metrics_port}: {exc}") from None

    signals = {"count": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        signals["count"] += 1
        if signals["count"] == 1 and signum == signal.SIGTERM:
            err.print(f"worker {runner.worker_id}: stopping (draining up to {drain_timeout:g}s)")
            runner.request_stop()
        else:
            err.print(f"worker {runner.worker_id}: stopping now; a running job is handed back")
            runner.request_stop(0.0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    err.print(
        f"sticker-maker worker {runner.worker_id}: database {_safe_url(settings.database_url)}, "
        f"storage {settings.storage_url or settings.storage_dir}"
    )
    reaper.start()
    try:
        runner.run()
    finally:
        reaper.stop()
        db.dispose()


@db_app.command("upgrade")
def db_upgrade(home: HomeOpt = None, database: DatabaseOpt = None) -> None:
    """Apply pending schema migrations (safe to run from several machines at once)."""
    from sticker_maker.config import Settings

    settings = Settings.load(home, database_url=database)
    if settings.database_url.startswith("sqlite"):
        settings.ensure_dirs()
    db = _open(settings.database_url)
    try:
        applied = db.upgrade()
        done, _ = db.migration_status()
    except Exception as exc:
        raise _fail(f"upgrade failed: {exc}") from None
    finally:
        db.dispose()
    for version, description in applied:
        print(f"applied {version}: {description}")
    current = max((v for v, _, _ in done), default=0)
    print(f"{_safe_url(settings.database_url)}: schema at version {current}, up to date")


@db_app.command("status")
def db_status(home: HomeOpt = None, database: DatabaseOpt = None) -> None:
    """Show applied and pending migrations, queued/running jobs and registered workers."""
    from sqlalchemy import func, select

    from sticker_maker.config import Settings
    from sticker_maker.db import jobs
    from sticker_maker.jobs.workers import WorkerRegistry

    settings = Settings.load(home, database_url=database)
    db = _open(settings.database_url)
    try:
        done, pending = db.migration_status()
        print(f"database: {_safe_url(settings.database_url)} ({db.backend})")
        for version, description, applied_at in done:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(applied_at))
            print(f"  applied  {version:>3}  {description}  ({stamp})")
        for version, description in pending:
            print(f"  PENDING  {version:>3}  {description}")
        if pending:
            print("run `sticker-maker db upgrade` to apply pending steps")
            return
        with db.read() as conn:
            counts = dict(
                conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
            )
        print("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
        now = time.time()
        for w in WorkerRegistry(db).all():
            job = f" job {w.job_id}" if w.job_id else ""
            print(
                f"worker {w.id}: {w.state}{job}, {w.jobs_done} done, "
                f"heartbeat {now - w.heartbeat_at:.0f}s ago"
            )
    except Exception as exc:
        raise _fail(f"cannot read the database: {exc}") from None
    finally:
        db.dispose()


def _open(url: str) -> Any:
    from sticker_maker.db import Database

    try:
        return Database(url, pool_size=1)
    except Exception as exc:
        raise _fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(db_app, name="db")
