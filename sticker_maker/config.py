"""Settings: where state lives and how the service is wired.

One variable moves all state: ``STICKER_MAKER_HOME`` (or ``--home``). Under it:
``sticker-maker.db`` (SQLite, the embedded default) and ``files/`` (outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sticker_maker.errors import InvalidInput

ENV_HOME = "STICKER_MAKER_HOME"
ENV_PRESETS = "STICKER_MAKER_PRESETS"
ENV_DATABASE = "STICKER_MAKER_DATABASE_URL"
ENV_PUBLIC_URL = "STICKER_MAKER_PUBLIC_URL"
ENV_SYNC_TIMEOUT = "STICKER_MAKER_SYNC_TIMEOUT"


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
    #: seconds a synchronous request (Segmind ``POST /v1/<model>``) waits for its job;
    #: below the Segmind client's 30 s read timeout so the client gets an answer
    sync_timeout: float = 25.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        home: Path | str | None = None,
        *,
        presets: Path | str | None = None,
        database_url: str | None = None,
        public_url: str | None = None,
        sync_timeout: float | None = None,
    ) -> Settings:
        """Flags first, then environment variables, then defaults."""
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
            sync_timeout=sync_timeout if sync_timeout is not None else _env_seconds(),
        )

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)


def _env_seconds(name: str = ENV_SYNC_TIMEOUT, default: float = 25.0) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise InvalidInput(f"{raw!r} must be a number of seconds between 0 and 3600", name)
    return value
