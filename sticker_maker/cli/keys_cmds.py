"""``sticker-maker keys …``: create, list, revoke, rotate, grant, limits, safety.

These work on the database directly (``--home`` or ``STICKER_MAKER_DATABASE_URL``),
so the first admin key can be made before any server runs:
``sticker-maker keys create --admin``. The same operations exist over HTTP for
admin keys under ``/v1/keys``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sticker_maker.accounts import KeyStore

keys_app = typer.Typer(
    # plain help (click's): words are never cut, text is never read as markup
    rich_markup_mode=None,
    help="Create and manage API keys and their credits (works on the database directly).",
    no_args_is_help=True,
)

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Folder for all state (database, output files). "
        "Default: $STICKER_MAKER_HOME, else ~/.local/share/sticker-maker.",
        show_default=False,
    ),
]
KeyArg = Annotated[
    str, typer.Argument(help="The key's id or prefix (sm_AbCd1234, as `keys list` shows).")
]
RpmOpt = Annotated[
    int | None,
    typer.Option(
        "--requests-per-minute", min=0, help="Per-key override (0 = unlimited).", show_default=False
    ),
]
SpmOpt = Annotated[
    int | None,
    typer.Option(
        "--submits-per-minute", min=0, help="Per-key override (0 = unlimited).", show_default=False
    ),
]
ActiveOpt = Annotated[
    int | None,
    typer.Option(
        "--max-active-jobs",
        min=0,
        help="Per-key override of jobs queued or running at once (0 = unlimited).",
        show_default=False,
    ),
]


def _console():  # type: ignore[no-untyped-def]
    from sticker_maker.cli.main import err, fail

    return err, fail


@contextmanager
def _store(home: Path | None) -> Iterator[KeyStore]:
    from sticker_maker.accounts import KeyStore
    from sticker_maker.config import Settings
    from sticker_maker.db import Database
    from sticker_maker.errors import StickerMakerError

    _, fail = _console()
    settings = Settings.load(home)
    settings.ensure_dirs()
    db = Database(settings.database_url)
    try:
        db.upgrade()
        yield KeyStore(db)
    except StickerMakerError as exc:
        raise fail(exc.message) from None
    finally:
        db.dispose()


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


SafetyOpt = Annotated[
    str | None,
    typer.Option(
        "--safety",
        help="Content safety level: off, relaxed, standard or strict (default: the "
        "service's, $STICKER_MAKER_SAFETY, else standard). relaxed allows adult content "
        "but never sexualised minors or sexual violence; off checks nothing (see README, "
        '"Content safety").',
        show_default=False,
    ),
]


@keys_app.command("create")
def keys_create(
    home: HomeOpt = None,
    credits: Annotated[float, typer.Option(help="Credits to grant the new key.", min=0)] = 0.0,
    label: Annotated[str, typer.Option(help="A note to recognise the key by.")] = "",
    admin: Annotated[
        bool, typer.Option(help="Create an admin key (may manage keys over /v1/keys).")
    ] = False,
    requests_per_minute: RpmOpt = None,
    submits_per_minute: SpmOpt = None,
    max_active_jobs: ActiveOpt = None,
    safety: SafetyOpt = None,
) -> None:
    """Create an API key and print it. It is shown once: only its hash is stored."""
    err, _ = _console()
    with _store(home) as store:
        new = store.create(
            label=label,
            scope="admin" if admin else "user",
            credits=credits,
            requests_per_minute=requests_per_minute,
            submits_per_minute=submits_per_minute,
            max_active_jobs=max_active_jobs,
            safety=safety,
        )
    level = f", safety {safety}" if safety else ""
    err.print(
        f"Created {'admin' if admin else 'user'} key {new.key.prefix} with {credits:g} credits"
        f"{level}. "
        "Store it now: it cannot be shown again.",
        highlight=False,
    )
    if credits == 0 and not admin:  # its first job would be refused (406): say so now
        err.print(
            f"It has no credits yet, so jobs are refused until you grant some: "
            f"sticker-maker keys grant {new.key.prefix} 1000",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    print(new.secret)


@keys_app.command("list")
def keys_list(
    home: HomeOpt = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List keys: prefix, label, scope, created, last used, balance (secrets are never shown)."""
    from rich.table import Table

    from sticker_maker.cli.main import out

    with _store(home) as store:
        rows = store.list_keys(include_revoked=all_keys)
    table = Table()
    # the prefix is what `grant` and `revoke` take: never cut it, whatever the width
    table.add_column("prefix", no_wrap=True, min_width=len("sm_") + 8)
    for name in ("label", "scope", "created", "last used", "balance", "revoked"):
        table.add_column(name)
    for key, balance in rows:
        table.add_row(
            key.prefix,
            key.label,
            key.scope,
            _when(key.created_at),
            _when(key.last_used_at),
            f"{balance:.4f}",
            _when(key.revoked_at) if key.revoked_at else "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: KeyArg, home: HomeOpt = None) -> None:
    """Revoke a key: every request with it gets 401 from now on."""
    from sticker_maker.accounts.keys import key_id_of

    err, _ = _console()
    with _store(home) as store:
        revoked = store.revoke(key_id_of(key))
    err.print(f"Revoked {revoked.prefix}.", highlight=False)


@keys_app.command("rotate")
def keys_rotate(key: KeyArg, home: HomeOpt = None) -> None:
    """Give a key a new secret (same id, balance and jobs) and print it; the old one stops."""
    from sticker_maker.accounts.keys import key_id_of

    err, _ = _console()
    with _store(home) as store:
        new = store.rotate(key_id_of(key))
    err.print(
        f"Rotated {new.key.prefix}: the old secret no longer works. Store the new one now.",
        highlight=False,
    )
    print(new.secret)


@keys_app.command("grant")
def keys_grant(
    key: KeyArg,
    credits: Annotated[
        float, typer.Argument(help="Credits to add (negative removes; never below zero).")
    ],
    home: HomeOpt = None,
    note: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
) -> None:
    """Add credits to a key (one ledger row); prints the new balance."""
    from sticker_maker.accounts.keys import key_id_of

    err, _ = _console()
    with _store(home) as store:
        kid = key_id_of(key)
        balance = store.grant(kid, credits, note)
    err.print(f"Granted {credits:g} credits to sm_{kid}.", highlight=False)
    print(f"{balance:g}")


@keys_app.command("limits")
def keys_limits(
    key: KeyArg,
    home: HomeOpt = None,
    requests_per_minute: RpmOpt = None,
    submits_per_minute: SpmOpt = None,
    max_active_jobs: ActiveOpt = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Return all three to the service defaults.")
    ] = False,
) -> None:
    """Set per-key limits (options left out are unchanged)."""
    from sticker_maker.accounts.keys import LIMIT_FIELDS, key_id_of

    err, _ = _console()
    given = {
        "requests_per_minute": requests_per_minute,
        "submits_per_minute": submits_per_minute,
        "max_active_jobs": max_active_jobs,
    }
    changes = (
        dict.fromkeys(LIMIT_FIELDS) if reset else {k: v for k, v in given.items() if v is not None}
    )
    with _store(home) as store:
        updated = store.set_limits(key_id_of(key), **changes)
    shown = ", ".join(
        f"{name}={getattr(updated, name) if getattr(updated, name) is not None else 'default'}"
        for name in LIMIT_FIELDS
    )
    err.print(f"{updated.prefix}: {shown}", highlight=False)


@keys_app.command("safety")
def keys_safety(
    key: KeyArg,
    level: Annotated[
        str,
        typer.Argument(help="off, relaxed, standard, strict, or default (the service's)."),
    ],
    home: HomeOpt = None,
) -> None:
    """Set a key's content safety level: relax it for a trusted key, or make it strict."""
    from sticker_maker.accounts.keys import key_id_of

    err, _ = _console()
    with _store(home) as store:
        updated = store.set_safety(key_id_of(key), None if level == "default" else level)
    err.print(f"{updated.prefix}: safety={updated.safety or 'default'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
