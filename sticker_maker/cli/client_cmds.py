"""The CLI as a client of a running service: ``generate --server`` and ``jobs …``.

Everything here goes through the public SDK (:class:`sticker_maker.Client`), so
these commands import neither torch nor the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sticker_maker.sdk import Client, Job

err = Console(stderr=True)
out = Console()

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="STICKER_MAKER_URL",
        help="URL of the sticker-maker service. Default: $STICKER_MAKER_URL, "
        "else http://127.0.0.1:8000.",
        show_default=False,
        show_envvar=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="STICKER_MAKER_API_KEY",
        help="API key for the service. Default: $STICKER_MAKER_API_KEY.",
        show_default=False,
        show_envvar=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON envelope(s).")]

jobs_app = typer.Typer(
    # plain help (click's): words are never cut, text is never read as markup
    rich_markup_mode=None,
    help="Your jobs on a sticker-maker service (--server / $STICKER_MAKER_URL).",
    no_args_is_help=True,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    # the message is text, not markup: "[presets.x]" must print as written
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _cli_words(message: str) -> str:
    """The SDK's advice in the CLI's terms (a flag, not a Python argument)."""
    return message.replace("pass api_key=...", "pass --api-key")


def _client(server: str | None, api_key: str | None) -> Client:
    from sticker_maker.sdk import Client

    return Client(server, api_key)


# -- generate --server --------------------------------------------------------


def generate_remote(
    server: str | None,
    api_key: str | None,
    output: Path,
    prompt: str,
    preset: str,
    params: dict[str, Any],
) -> None:
    """Submit to the service, show queue position then steps, save the files."""
    from sticker_maker.sdk import APIError

    with _client(server, api_key) as client:
        job = None
        try:
            job = client.submit(prompt, preset=preset, **params)
            err.print(f"job {job.id} on {client.base_url}", highlight=False)
            _wait_with_progress(job)
            paths = job.save(output)
        except KeyboardInterrupt:
            if job is not None and not job.done:
                try:
                    job.cancel()
                    err.print(f"canceled job {job.id}")
                except APIError as exc:
                    err.print(f"could not cancel job {job.id}: {exc}")
            raise
        except APIError as exc:
            raise fail(_cli_words(str(exc))) from None
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)


def _wait_with_progress(job: Job) -> None:
    from sticker_maker.cli._progress import step_progress

    with step_progress(err) as progress:
        task = progress.add_task("queued", total=job.progress.total or None)

        def show(current: Job) -> None:
            if current.status == "queued":
                ahead = current.queue_position
                text = "queued" if ahead is None else f"queued ({ahead} ahead)"
                progress.update(task, description=text)
            elif current.status == "running":
                step, total = current.progress.step, current.progress.total
                if step == 0:
                    text = "loading model"
                elif total and step >= total:
                    text = "finishing (cut-out)"
                else:
                    text = f"step {step}/{total}"
                progress.update(task, description=text, completed=step, total=total or None)
            else:
                progress.update(
                    task,
                    description=current.status,
                    completed=current.progress.step,
                    total=current.progress.total or None,
                )

        job.wait(on_progress=show, poll_interval=0.5)


# -- jobs ---------------------------------------------------------------------


def _run(action: Any) -> Any:
    from sticker_maker.sdk import APIError

    try:
        return action()
    except APIError as exc:
        raise fail(_cli_words(str(exc))) from None


@jobs_app.command("list")
def jobs_list(
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).", min=1, max=200)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List your recent jobs, newest first."""
    with _client(server, api_key) as client:
        jobs = _run(lambda: client.jobs.list(limit=limit))
    if as_json:
        print(json.dumps([j.raw for j in jobs], indent=2))
        return
    if not jobs:
        err.print("no jobs yet")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=36)  # whole: it is copied into commands
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("preset", overflow="ellipsis", no_wrap=True)
    table.add_column("created", no_wrap=True, min_width=19)
    table.add_column("prompt", overflow="ellipsis", no_wrap=True)
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else ""
        prompt = str(job.input.get("prompt", ""))
        table.add_row(
            job.id, job.status, job.preset, created, prompt[:40] + ("…" if len(prompt) > 40 else "")
        )
    # piped output is not cut to 80 columns
    (out if out.is_terminal else Console(width=200)).print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job: status, progress, timings, error and output URLs."""
    with _client(server, api_key) as client:
        job = _run(lambda: client.jobs.get(job_id))
    if as_json:
        print(json.dumps(job.raw, indent=2))
        return
    rows = [
        ("id", job.id),
        ("status", job.status),
        ("preset", job.preset),
        ("prompt", job.input.get("prompt", "")),
        ("seed", job.input.get("seed", "")),
        ("progress", f"{job.progress.step}/{job.progress.total}"),
    ]
    if job.queue_position is not None:
        rows.append(("queue position", job.queue_position))
    for name in ("queue_time", "predict_time", "total_time"):
        value = getattr(job.metrics, name)
        if value is not None:
            rows.append((name.replace("_", " "), f"{value:.2f}s"))
    if job.error:
        rows.append(("error", job.error))
    rows.extend((f"{o.kind} {o.index}", o.url) for o in job.output)
    for name, value in rows:
        out.print(f"[bold]{name:>14}[/]  {value}", highlight=False, soft_wrap=True)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    with _client(server, api_key) as client:
        job = _run(lambda: client.jobs.cancel(job_id))
    if job.status in ("succeeded", "failed"):
        err.print(f"job {job.id} had already finished ({job.status}); nothing to cancel")
        return
    state = "canceled" if job.status == "canceled" else "cancel requested (stops at next step)"
    out.print(f"job {job.id}: {state}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
