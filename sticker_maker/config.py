"""Settings: where state lives and how the service is wired.

One variable moves all state: ``STICKER_MAKER_HOME`` (or ``--home``). Under it:
``sticker-maker.db`` (SQLite, the embedded default) and ``files/`` (outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sticker_maker.engine.options import EngineOptions, pipeline_cache_from_env

ENV_HOME = "STICKER_MAKER_HOME"
ENV_PRESETS = "STICKER_MAKER_PRESETS"
ENV_DATABASE = "STICKER_MAKER_DATABASE_URL"
ENV_PUBLIC_URL = "STICKER_MAKER_PUBLIC_URL"


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
    #: how many loaded base pipelines the engine keeps (least recently used go first);
    #: --pipeline-cache or STICKER_MAKER_PIPELINE_CACHE
    pipeline_cache_size: int = 2
    #: device, dtype, offload, LoRA fusing, torch.compile (flags or STICKER_MAKER_* vars)
    engine: EngineOptions = field(default_factory=EngineOptions)
    #: seconds between queue polls when no in-process wake-up arrives
    poll_interval: float = 1.0
    #: seconds after completion before jobs and files are deleted
    retention_seconds: float = 3600.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        home: Path | str | None = None,
        *,
        presets: Path | str | None = None,
        database_url: str | None = None,
        public_url: str | None = None,
        pipeline_cache_size: int | None = None,
        engine: EngineOptions | None = None,
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
            pipeline_cache_size=pipeline_cache_size or pipeline_cache_from_env() or 2,
            engine=engine or EngineOptions.from_env(),
        )

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)
