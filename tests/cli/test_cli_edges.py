"""CLI rough edges: bracketed text survives, key prefixes are never cut, a second local
run never overwrites the first one's files, advice names the CLI's own flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sticker_maker.cli import client_cmds, main
from sticker_maker.cli.main import app


def test_error_messages_keep_bracketed_text(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = main.fail("edit [presets.sticker-maker] in presets.toml")
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == 1
    assert "edit [presets.sticker-maker] in presets.toml" in capsys.readouterr().err


def test_keys_list_shows_whole_prefixes_in_a_narrow_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(tmp_path / "home")
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--label", "a long label " * 4, "--home", home])
    assert created.exit_code == 0, created.output
    prefix = "_".join(created.stdout.strip().split("_")[:2])  # sm_XXXXXXXX
    monkeypatch.setattr(main.out, "_width", 50)
    listed = runner.invoke(app, ["keys", "list", "--home", home])
    assert listed.exit_code == 0, listed.output
    assert prefix in listed.stdout


def test_advice_names_the_cli_flag_not_the_python_argument() -> None:
    message = "no API key was given: pass api_key=... or set STICKER_MAKER_API_KEY"
    assert client_cmds._cli_words(message) == (
        "no API key was given: pass --api-key or set STICKER_MAKER_API_KEY"
    )


def test_a_second_local_run_with_the_same_seed_keeps_the_first_files(tmp_path: Path) -> None:
    first = main._free_names(tmp_path, "cat-7")
    assert first == (tmp_path / "cat-7.png", tmp_path / "cat-7-sticker.png")
    for path in first:
        path.write_bytes(b"first run")
    second = main._free_names(tmp_path, "cat-7")
    assert second == (tmp_path / "cat-7-2.png", tmp_path / "cat-7-2-sticker.png")
    second[0].write_bytes(b"second")
    assert main._free_names(tmp_path, "cat-7")[0] == tmp_path / "cat-7-3.png"


def test_serve_help_names_every_environment_variable() -> None:
    """Help text is not markup: '[env X; default N]' used to vanish, leaving ' .'."""
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in ("SYNC_TIMEOUT", "MAX_BATCH", "RETENTION_SECONDS", "MAX_QUEUE_DEPTH"):
        assert f"STICKER_MAKER_{name}" in text
    assert " ." not in text


def _commands() -> dict[str, object]:
    """Every command of the CLI by its path ("serve", "keys create", …)."""
    import typer.main

    found: dict[str, object] = {}

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("path", sorted(_commands()))
def test_help_at_80_columns_keeps_every_name_whole(path: str) -> None:
    """Environment variable names and defaults are never cut (no "…"), and an option
    without a default does not end in a stray " ."."""
    command = _commands()[path]
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    said = " ".join(
        p.help or ""
        for p in command.params
        if hasattr(p, "help")  # type: ignore[attr-defined]
    ) + (command.help or "")  # type: ignore[attr-defined]
    for name in set(re.findall(r"STICKER_MAKER_[A-Z_]*[A-Z]", said)):
        assert re.search(rf"{name}\b", result.output), (path, name, result.output)
    assert "…" not in result.output.replace("postgresql://…", "").replace("s3://…", "")
    for line in result.output.splitlines():
        assert not line.rstrip().endswith(" ."), (path, line)
