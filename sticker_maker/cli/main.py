"""``sticker-maker``: run the service, manage keys, make stickers.

Heavy imports (torch, diffusers, FastAPI) happen inside commands so ``--help``
and the client commands start fast.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="sticker-maker",
    help="Turn a text prompt into ready-to-use stickers: run the service, manage API keys, "
    "generate and finish stickers locally.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

err = Console(stderr=True)
out = Console()

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Folder for all state (database, output files). "
        "Default: $STICKER_MAKER_HOME, else ~/.local/share/sticker-maker.",
        show_default=False,
    ),
]
PresetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--presets",
        help="TOML file that overrides or adds presets (see README). "
        "Default: $STICKER_MAKER_PRESETS.",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    home: HomeOpt = None,
    presets: PresetsOpt = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL clients reach this service at (for output and poll URLs).",
            show_default=False,
        ),
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the in-process GPU/CPU worker.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    retention: Annotated[
        float | None,
        typer.Option(
            help="Seconds jobs and files are kept after completion [env "
            "STICKER_MAKER_RETENTION_SECONDS; default 3600].",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_queue_depth: Annotated[
        int | None,
        typer.Option(
            help="Queued jobs in the whole service before submits get 503 (0 = no cap) "
            "[env STICKER_MAKER_MAX_QUEUE_DEPTH; default 1000].",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_active_jobs: Annotated[
        int | None,
        typer.Option(
            help="Per key: jobs queued or running at once (429 beyond) "
            "[env STICKER_MAKER_MAX_ACTIVE_JOBS; default 20].",
            min=0,
            show_default=False,
        ),
    ] = None,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(
            help="Per key: authenticated requests per minute "
            "[env STICKER_MAKER_REQUESTS_PER_MINUTE; default 3000].",
            min=0,
            show_default=False,
        ),
    ] = None,
    submits_per_minute: Annotated[
        int | None,
        typer.Option(
            help="Per key: job submissions per minute "
            "[env STICKER_MAKER_SUBMITS_PER_MINUTE; default 120].",
            min=0,
            show_default=False,
        ),
    ] = None,
    webhook_allow_network: Annotated[
        list[str] | None,
        typer.Option(
            help="A private network webhooks may call (CIDR, repeatable), e.g. 10.0.0.0/8 "
            "[env STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS, comma-separated].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the HTTP API (and, by default, an in-process worker).

    All state lives under the home folder: a SQLite database and the output files.
    The model runs in a worker child process, so a crash cannot take the API down.
    Limits, retention and the credit estimate are also set by STICKER_MAKER_* variables
    (see README, "Accounts, credits and limits").
    """
    import uvicorn

    from sticker_maker.api import create_app
    from sticker_maker.config import Settings
    from sticker_maker.errors import StickerMakerError

    try:
        settings = Settings.load(
            home,
            presets=presets,
            public_url=public_url,
            retention_seconds=retention,
            max_queue_depth=max_queue_depth,
            max_active_jobs=max_active_jobs,
            requests_per_minute=requests_per_minute,
            submits_per_minute=submits_per_minute,
            webhook_allow_networks=tuple(webhook_allow_network) if webhook_allow_network else None,
        )
        application = create_app(settings, run_worker=worker)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    err.print(f"sticker-maker: home {settings.home}, listening on http://{host}:{port}")
    err.print("Create a key with: sticker-maker keys create" + _home_flag(home))
    uvicorn.run(application, host=host, port=port, log_level=log_level)


def _home_flag(home: Path | None) -> str:
    return f" --home {home}" if home else ""


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the sticker shows, e.g. 'cute cat'.")],
    preset: Annotated[str, typer.Option(help="Preset name or alias.")] = "sticker-maker",
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the PNGs.")] = Path(
        "."
    ),
    seed: Annotated[
        int | None,
        typer.Option(help="Seed (default: random). Image i uses seed+i.", show_default=False),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Denoising steps (default: preset's).", show_default=False)
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Width, multiple of 8.", show_default=False)
    ] = None,
    height: Annotated[
        int | None, typer.Option(help="Height, multiple of 8.", show_default=False)
    ] = None,
    negative: Annotated[str, typer.Option("--negative", help="Negative prompt.")] = "",
    scheduler: Annotated[
        str | None, typer.Option(help="Sampler name, e.g. 'Euler a'.", show_default=False)
    ] = None,
    guidance: Annotated[
        float | None, typer.Option(help="Guidance scale.", show_default=False)
    ] = None,
    samples: Annotated[int, typer.Option(help="Images to make (1-4).")] = 1,
    presets: PresetsOpt = None,
) -> None:
    """Make stickers on this machine, without a server.

    Writes NAME-SEED.png (as generated) and NAME-SEED-sticker.png (transparent cut-out).
    """
    from sticker_maker.errors import StickerMakerError
    from sticker_maker.params import parse_request, resolve
    from sticker_maker.presets import load_presets

    raw = {"prompt": prompt, "preset": preset, "negative_prompt": negative, "samples": samples}
    optional = {
        "seed": seed,
        "steps": steps,
        "width": width,
        "height": height,
        "scheduler": scheduler,
        "guidance_scale": guidance,
    }
    raw.update({k: v for k, v in optional.items() if v is not None})
    try:
        registry = load_presets(presets)
        job = resolve(parse_request(raw), registry)
        stickers = _run_locally(job, presets)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    output.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "sticker"
    for sticker in stickers:
        image_path = output / f"{stem}-{sticker.seed}.png"
        sticker_path = output / f"{stem}-{sticker.seed}-sticker.png"
        image_path.write_bytes(sticker.image_png)
        sticker_path.write_bytes(sticker.sticker_png)
        out.print(f"{image_path}\n{sticker_path}")


def _run_locally(job, presets_file: Path | None):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("loading model", total=job.steps)
        from sticker_maker.worker.predictor import Predictor

        predictor = Predictor()
        predictor.setup(str(presets_file) if presets_file else None)

        def on_progress(step: int, total: int) -> None:
            progress.update(task, description="denoising", completed=step, total=total)

        return predictor.predict(job, on_progress=on_progress)


def _register_extras() -> None:
    from sticker_maker.cli import keys_cmds

    keys_cmds.register(app)
    try:
        from sticker_maker.cli import finishing_cmds
    except ImportError:  # pragma: no cover - finishing commands are optional
        return
    finishing_cmds.register(app)


_register_extras()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
