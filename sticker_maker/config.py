"""Settings: where state lives and how the service is wired.

One variable moves all state: ``STICKER_MAKER_HOME`` (or ``--home``). Under it:
``sticker-maker.db`` (SQLite, the embedded default) and ``files/`` (outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_HOME = "STICKER_MAKER_HOME"
ENV_PRESETS = "STICKER_MAKER_PRESETS"
ENV_DATABASE = "STICKER_MAKER_DATABASE_URL"
ENV_PUBLIC_URL = "STICKER_MAKER_PUBLIC_URL"
ENV_STORAGE = "STICKER_MAKER_STORAGE"


def default_home() -> Path:
    """``$STICKER_MAKER_HOME``, else ``$XDG_DATA_HOME/sticker-maker``, else ``~/.local/share``."""
    if env := os.environ.get(ENV_HOME):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "sticker-maker"


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process (server, worker or CLI)."""

    home: Path
    database_url: str
    storage_dir: Path
    presets_file: Path | None = None
    public_url: str | None = None
    #: how many loaded base pipelines the engine keeps (least recently used go first)
    pipeline_cache_size: int = 2
    #: seconds between queue polls when no in-process wake-up arrives
    poll_interval: float = 1.0
    #: seconds after completion before jobs and files are deleted
    retention_seconds: float = 3600.0
    extra: dict[str, str] = field(default_factory=dict)
    # -- many machines (docs/deploy.md); each also STICKER_MAKER_<NAME>, e.g. _LEASE_TIMEOUT --
    #: where outputs go: None = ``storage_dir``; a folder; or ``s3://bucket?endpoint=…``
    storage_url: str | None = None
    #: a running job whose worker sent no heartbeat for this many seconds is re-queued
    lease_timeout: float = 30.0
    #: seconds between a worker's heartbeats (keep well under ``lease_timeout``)
    heartbeat_interval: float = 10.0
    #: claims of one job before a lost lease fails it instead of re-queueing it
    max_attempts: int = 3
    #: PostgreSQL connections kept per process (as many again may open under load)
    db_pool_size: int = 5

    @classmethod
    def load(
        cls,
        home: Path | str | None = None,
        *,
        presets: Path | str | None = None,
        database_url: str | None = None,
        public_url: str | None = None,
        storage: str | None = None,
        **scale: float | int | None,
    ) -> Settings:
        """Flags first, then environment variables, then defaults.

        ``scale`` sets the many-machines numbers by name (``lease_timeout=5``; None =
        not given), else ``STICKER_MAKER_<NAME>``, else the defaults above.
        """
        home_path = Path(home).expanduser() if home else default_home()
        presets_env = os.environ.get(ENV_PRESETS)
        presets_path = Path(presets) if presets else (Path(presets_env) if presets_env else None)
        db = (
            database_url
            or os.environ.get(ENV_DATABASE)
            or f"sqlite:///{home_path / 'sticker-maker.db'}"
        )
        return cls(
            home=home_path,
            database_url=db,
            storage_dir=home_path / "files",
            presets_file=presets_path,
            public_url=public_url or os.environ.get(ENV_PUBLIC_URL) or None,
            storage_url=storage or os.environ.get(ENV_STORAGE) or None,
            **_scale_settings(scale),
        )

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)


_SCALE = {
    "lease_timeout": float,
    "heartbeat_interval": float,
    "poll_interval": float,
    "max_attempts": int,
    "db_pool_size": int,
}


def _scale_settings(given: dict[str, float | int | None]) -> dict[str, float | int]:
    """Lease, heartbeat, poll and pool numbers: keyword, else env var; checked > 0."""
    from sticker_maker.errors import InvalidInput

    unknown = sorted(set(given) - set(_SCALE))
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, float | int] = {}
    for name, kind in _SCALE.items():
        env = f"STICKER_MAKER_{name.upper()}"
        raw = given.get(name)
        if raw is None:
            raw = os.environ.get(env) or None
        if raw is None:
            continue
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"must be a number (env {env}), got {raw!r}", name) from None
        if value <= 0:
            raise InvalidInput(f"must be greater than 0 (env {env}), got {raw!r}", name)
        values[name] = value
    lease = values.get("lease_timeout", Settings.lease_timeout)
    beat = values.get("heartbeat_interval", Settings.heartbeat_interval)
    if beat >= lease:
        raise InvalidInput(
            f"heartbeat_interval ({beat:g}s) must be shorter than lease_timeout ({lease:g}s); "
            "a third of it is a good value",
            "heartbeat_interval",
        )
    return values
