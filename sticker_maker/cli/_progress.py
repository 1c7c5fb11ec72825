"""The progress bar every long CLI command shows (local generation, remote jobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def step_progress(console: Console) -> Progress:
    """``description ━━━━ n/N 0:00:03`` on ``console`` (stderr, so stdout stays the file list)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
