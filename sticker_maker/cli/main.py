"""``sticker-maker``: run the service, manage keys, make stickers.

Heavy imports (torch, diffusers, FastAPI) happen inside commands so ``--help``
and the client commands start fast.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sticker_maker.cli import pack_cmds
from sticker_maker.cli._options import VerboseOpt
from sticker_maker.cli.finishing_cmds import Holes
from sticker_maker.cli.pack_cmds import ImageOpt, NoiseOpt, StrengthOpt, WeightOpt

app = typer.Typer(
    # plain help (click's): words are never cut, text is never read as markup
    rich_markup_mode=None,
    name="sticker-maker",
    help="Turn a text prompt into ready-to-use stickers: run the service, manage API keys, "
    "generate and finish stickers locally or on a service (--server), manage your jobs.",
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

#: what the start-up banner suggests: a key its first job can use (README, "Two commands")
FIRST_KEY_COMMAND = "sticker-maker keys create --credits 1000"


def fail(message: str, code: int = 1) -> typer.Exit:
    # the message is text, not markup: "[presets.x]" must print as written
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
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
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run the in-process GPU/CPU worker. --no-worker: an API-only replica "
            "(run `sticker-maker worker` on the GPU machines).",
        ),
    ] = True,
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL: sqlite:///PATH or postgresql://USER:PASS@HOST:5432/DB "
            "(many machines). Default: $STICKER_MAKER_DATABASE_URL, else SQLite under --home.",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Where outputs go: a folder, or s3://BUCKET/PREFIX?endpoint=URL "
            "(credentials from the AWS_* env vars). Default: $STICKER_MAKER_STORAGE, "
            "else HOME/files.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics without a key on this port too, for Prometheus on the "
            "internal network; on the API port /metrics needs an admin key "
            "(env STICKER_MAKER_METRICS_PORT).",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
    sync_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a synchronous request (Segmind POST /v1/<model>) waits for its job "
            "before answering 504 (env STICKER_MAKER_SYNC_TIMEOUT; default 25).",
            min=0.1,
            max=3600,
            show_default=False,
        ),
    ] = None,
    pipeline_cache: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Base pipelines kept loaded between jobs (least recently used goes first; "
            "refiners and upscalers are bounded the same). "
            "Default: $STICKER_MAKER_PIPELINE_CACHE_SIZE, else 2.",
            show_default=False,
        ),
    ] = None,
    max_batch: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="Jobs denoised together: queued jobs with the same preset, size, steps, "
            "sampler, guidance and LoRA scale share each denoising step, and one submitted "
            "while they run joins them at the next step (each keeps its seed; each is "
            "billed its share). 0 = auto: 4 on a GPU, 1 on a CPU "
            "(env STICKER_MAKER_MAX_BATCH).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="cuda, cuda:N, cpu or mps. Default: $STICKER_MAKER_DEVICE, else cuda if present.",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="float16, bfloat16 or float32. Default: $STICKER_MAKER_DTYPE, else float16 "
            "on CUDA and float32 on CPU.",
            show_default=False,
        ),
    ] = None,
    offload: Annotated[
        str | None,
        typer.Option(
            help="Keep weights in CPU memory between uses on small GPUs: none, model (one "
            "model on the GPU at a time) or sequential (slowest, least memory). "
            "Default: $STICKER_MAKER_OFFLOAD, else none.",
            show_default=False,
        ),
    ] = None,
    fuse_lora: Annotated[
        str | None,
        typer.Option(
            help="Fuse the active LoRA into the weights (faster steps): auto (on for CUDA), "
            "on or off. Default: $STICKER_MAKER_FUSE_LORA, else auto.",
            show_default=False,
        ),
    ] = None,
    compile_unet: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the UNet (first job per size compiles for about a minute). "
            "Default: $STICKER_MAKER_COMPILE, else off.",
            show_default=False,
        ),
    ] = None,
    preview_vae: Annotated[
        str | None,
        typer.Option(
            help="Live previews on GET /v1/jobs/{id}/events: a diffusers AutoencoderTiny "
            "(Hub id such as madebyollin/taesdxl, or a folder). Needs --preview-every. "
            "Default: $STICKER_MAKER_PREVIEW_VAE, else no previews.",
            show_default=False,
        ),
    ] = None,
    preview_every: Annotated[
        int | None,
        typer.Option(
            help="A live preview every N denoising steps (0: none). "
            "Default: $STICKER_MAKER_PREVIEW_EVERY, else 0.",
            min=0,
            show_default=False,
        ),
    ] = None,
    retention: Annotated[
        float | None,
        typer.Option(
            help="Seconds jobs and files are kept after completion (env "
            "STICKER_MAKER_RETENTION_SECONDS; default 3600).",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_queue_depth: Annotated[
        int | None,
        typer.Option(
            help="Queued jobs in the whole service before submits get 503 (0 = no cap) "
            "(env STICKER_MAKER_MAX_QUEUE_DEPTH; default 1000).",
            min=0,
            show_default=False,
        ),
    ] = None,
    max_active_jobs: Annotated[
        int | None,
        typer.Option(
            help="Per key: jobs queued or running at once (429 beyond) "
            "(env STICKER_MAKER_MAX_ACTIVE_JOBS; default 20).",
            min=0,
            show_default=False,
        ),
    ] = None,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(
            help="Per key: authenticated requests per minute "
            "(env STICKER_MAKER_REQUESTS_PER_MINUTE; default 3000).",
            min=0,
            show_default=False,
        ),
    ] = None,
    submits_per_minute: Annotated[
        int | None,
        typer.Option(
            help="Per key: job submissions per minute "
            "(env STICKER_MAKER_SUBMITS_PER_MINUTE; default 120).",
            min=0,
            show_default=False,
        ),
    ] = None,
    webhook_allow_network: Annotated[
        list[str] | None,
        typer.Option(
            help="A private network webhooks may call (CIDR, repeatable), e.g. 10.0.0.0/8 "
            "(env STICKER_MAKER_WEBHOOK_ALLOW_NETWORKS, comma-separated).",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Start the HTTP API (and, by default, an in-process worker).

    By default all state lives under the home folder: a SQLite database and the output
    files. The model runs in a worker child process, so a crash cannot take the API down.
    Engine options (device, precision, memory) are flags or STICKER_MAKER_* variables.
    Limits, retention and the credit estimate are also set by STICKER_MAKER_* variables
    (see README, "Accounts, credits and limits"). For many machines see docs/deploy.md:
    --database postgresql://…, --storage s3://…, --no-worker on API replicas and
    `sticker-maker worker` on each GPU.
    """
    from sticker_maker.quiet import quiet_ml_libraries

    quiet_ml_libraries(verbose or None)  # before the libraries are imported
    import uvicorn

    from sticker_maker.api import create_app
    from sticker_maker.config import Settings
    from sticker_maker.engine.options import EngineOptions
    from sticker_maker.errors import StickerMakerError

    try:
        engine = EngineOptions.from_env(
            device=device,
            dtype=dtype,
            offload=offload,
            fuse_lora=fuse_lora,
            compile=compile_unet,
            preview_vae=preview_vae,
            preview_every=preview_every,
        )
        settings = Settings.load(
            home,
            presets=presets,
            public_url=public_url,
            database_url=database,
            storage=storage,
            pipeline_cache_size=pipeline_cache,
            max_batch=max_batch,
            engine=engine,
            retention_seconds=retention,
            max_queue_depth=max_queue_depth,
            max_active_jobs=max_active_jobs,
            requests_per_minute=requests_per_minute,
            submits_per_minute=submits_per_minute,
            webhook_allow_networks=tuple(webhook_allow_network) if webhook_allow_network else None,
            sync_timeout=sync_timeout,
            metrics_port=metrics_port,
        )
        application = create_app(settings, run_worker=worker)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    where = (
        f"home {settings.home}"
        if settings.database_url.startswith("sqlite") and not settings.storage_url
        else "database and storage as configured"
    )
    err.print(f"sticker-maker: {where}, listening on http://{host}:{port}")
    # a key with credits: one made without any gets 406 on its first job
    err.print(
        f"Create a key with: {FIRST_KEY_COMMAND}{_home_flag(home)}",
        highlight=False,
        markup=False,
        soft_wrap=True,  # one line, to copy whole
    )
    # the service's own lines (one per job start and end) beside uvicorn's
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.DEBUG),  # uvicorn's "trace" too
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
    lora_scale: Annotated[
        float | None,
        typer.Option(help="LoRA weight, 0-4 (0 = no LoRA).", show_default=False),
    ] = None,
    upscale: Annotated[
        bool,
        typer.Option(help="Upscale 2x and refine (needs the preset's upscaler and refiner)."),
    ] = False,
    upscale_steps: Annotated[int, typer.Option(help="Refine steps when upscaling.")] = 10,
    holes: Annotated[
        Holes,
        typer.Option(
            "--holes",
            case_sensitive=False,
            help="Holes in the cut-out (a wheel, a ring, a handle): 'auto' cuts what is "
            "backdrop and keeps backdrop-coloured art, 'keep' fills every hole, 'cut' "
            "removes every one.",
        ),
    ] = Holes.auto,
    presets: PresetsOpt = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="STICKER_MAKER_URL",
            help="Run on this sticker-maker service (URL) instead of locally, with a live "
            "progress bar. Default: $STICKER_MAKER_URL; unset means run locally.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="STICKER_MAKER_API_KEY",
            help="API key for --server. Default: $STICKER_MAKER_API_KEY.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Run locally even if $STICKER_MAKER_URL is set.")
    ] = False,
    image: ImageOpt = None,
    ip_adapter_weight: WeightOpt = None,
    ip_adapter_noise: NoiseOpt = None,
    strength: StrengthOpt = None,
) -> None:
    """Make stickers: on this machine (no server needed), or on a service with --server.

    Writes NAME-SEED.png (as generated) and NAME-SEED-sticker.png (transparent cut-out)
    and prints their paths.
    """
    raw = {
        "prompt": prompt,
        "preset": preset,
        "negative_prompt": negative,
        "samples": samples,
        "upscale": upscale,
        "upscale_steps": upscale_steps,
    }
    optional = {
        "seed": seed,
        "steps": steps,
        "width": width,
        "height": height,
        "scheduler": scheduler,
        "guidance_scale": guidance,
        "lora_scale": lora_scale,
    }
    raw.update({k: v for k, v in optional.items() if v is not None})
    if holes is not Holes.auto:  # the bare cut-out on the image's canvas, holes as asked
        raw["finishing"] = {"border": 0, "trim": False, "holes": holes.value}
    reference = pack_cmds.reference_params(image, ip_adapter_weight, ip_adapter_noise, strength)
    if server and not local:
        from sticker_maker.cli.client_cmds import generate_remote

        params = {k: v for k, v in raw.items() if k not in ("prompt", "preset")}
        generate_remote(server, api_key, output, prompt, preset, {**params, **reference})
        return

    from sticker_maker.config import ENV_PRESETS
    from sticker_maker.errors import StickerMakerError
    from sticker_maker.params import parse_request, resolve
    from sticker_maker.presets import load_presets

    if presets is None and os.environ.get(ENV_PRESETS):  # as --help says
        presets = Path(os.environ[ENV_PRESETS])
    try:
        registry = load_presets(presets)
        job = resolve(parse_request(raw), registry)
        picture = None
        if reference:  # stickers of a picture: checked and attached as the API does
            job, picture = pack_cmds.attach_reference(job, reference, registry)
        stickers = pack_cmds.run_local(job, "generate", picture, presets)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    output.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "sticker"
    for sticker in stickers:
        image_path, sticker_path = _free_names(output, f"{stem}-{sticker.seed}")
        image_path.write_bytes(sticker.image_png)
        sticker_path.write_bytes(sticker.sticker_png)
        out.print(f"{image_path}\n{sticker_path}")


def _free_names(folder: Path, base: str) -> tuple[Path, Path]:
    """``base.png`` and ``base-sticker.png``, or ``base-2…`` when an earlier run wrote them:
    a second run with the same prompt and seed never overwrites the first one's files."""
    name, n = base, 1
    while (folder / f"{name}.png").exists() or (folder / f"{name}-sticker.png").exists():
        n += 1
        name = f"{base}-{n}"
    return folder / f"{name}.png", folder / f"{name}-sticker.png"


def _register_extras() -> None:
    from sticker_maker.cli import client_cmds, keys_cmds, ops_cmds

    keys_cmds.register(app)
    client_cmds.register(app)
    pack_cmds.register(app)
    ops_cmds.register(app)
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
