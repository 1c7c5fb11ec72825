"""Settings: where state lives and how the service is wired.

One variable moves all state: ``STICKER_MAKER_HOME`` (or ``--home``). Under it:
``sticker-maker.db`` (SQLite, the embedded default) and ``files/`` (outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sticker_maker.engine.options import EngineOptions
from sticker_maker.safety.settings import SafetySettings

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
    #: how many loaded base pipelines the engine keeps (least recently used go first);
    #: --pipeline-cache or STICKER_MAKER_PIPELINE_CACHE_SIZE
    pipeline_cache_size: int = 2
    #: device, dtype, offload, LoRA fusing, torch.compile (flags or STICKER_MAKER_* vars)
    engine: EngineOptions = field(default_factory=EngineOptions)
    #: jobs one model call may take (batching across jobs); 0 = auto: 4 on a GPU, else 1
    max_batch: int = 0
    #: seconds between queue polls when no in-process wake-up arrives
    poll_interval: float = 1.0
    #: seconds after completion before jobs, their inputs and files are deleted
    retention_seconds: float = 3600.0
    #: seconds a synchronous request (Segmind ``POST /v1/<model>``) waits for its job;
    #: below the Segmind client's 30 s read timeout so the client gets an answer
    sync_timeout: float = 25.0
    extra: dict[str, str] = field(default_factory=dict)
    # -- accounts and protection (each also STICKER_MAKER_<NAME>, e.g. _MAX_QUEUE_DEPTH) --
    #: seconds between retention sweeps (deleting expired jobs, files, idempotency keys)
    sweep_interval: float = 60.0
    #: per key: authenticated requests of any kind per minute
    requests_per_minute: int = 3000
    #: per key: job submissions per minute
    submits_per_minute: int = 120
    #: per key: jobs queued or running at once
    max_active_jobs: int = 20
    #: whole service: queued jobs; beyond it submits get 503
    max_queue_depth: int = 1000
    #: largest request body accepted (bytes); larger gets 413
    max_request_bytes: int = 8 * 1024 * 1024  # = bounds.MAX_REQUEST_BYTES
    #: credit reservation: seconds of fixed overhead per job (text encoders, cut-out, saving)
    estimate_base_seconds: float = 30.0
    #: credit reservation: seconds per denoising step of one 1024x1024 image (see README)
    estimate_step_seconds: float = 1.0
    #: webhooks: networks (CIDR, comma-separated in the env var) allowed although private
    webhook_allow_networks: tuple[str, ...] = ()
    #: webhooks: seconds per delivery attempt (connect + send + read)
    webhook_timeout: float = 10.0
    #: webhooks: attempts before a delivery is given up
    webhook_max_attempts: int = 8
    #: webhooks: first retry delay in seconds; doubles each attempt (capped at one hour)
    webhook_backoff: float = 5.0
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
    # -- running a fleet (docs/deploy.md, "Kubernetes"); each also STICKER_MAKER_<NAME> --
    #: a second listener serving /metrics without a key (0 = none; then /metrics on the
    #: API port needs an admin key)
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
    #: seconds a request body may go without a byte arriving before it is cut off (408)
    body_timeout: float = 15.0
    #: request bodies being received at once, in bytes, over all requests; beyond it new
    #: bodies get 503 with Retry-After (0 = no cap)
    max_bodies_in_flight_bytes: int = 64 * 1024 * 1024
    #: content safety (README, "Content safety"): STICKER_MAKER_SAFETY_* variables
    safety: SafetySettings = field(default_factory=SafetySettings)

    @classmethod
    def load(
        cls,
        home: Path | str | None = None,
        *,
        presets: Path | str | None = None,
        database_url: str | None = None,
        public_url: str | None = None,
        storage: str | None = None,
        engine: EngineOptions | None = None,
        safety: SafetySettings | None = None,
        **overrides: Any,
    ) -> Settings:
        """Flags first, then environment variables, then defaults.

        ``overrides`` are other fields by name (``max_queue_depth=10``); ``None`` means
        "not given". Each tunable field also reads ``STICKER_MAKER_<FIELD>``.
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
            engine=engine or EngineOptions.from_env(),
            safety=safety or SafetySettings.from_env(),
            **_check_scale(_tunables(overrides)),
        )

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.storage_dir.mkdir(parents=True, exist_ok=True)


#: fields settable by keyword or ``STICKER_MAKER_<NAME>`` (the rest have their own flags)
TUNABLE = (
    "pipeline_cache_size",
    "max_batch",
    "poll_interval",
    "retention_seconds",
    "sweep_interval",
    "requests_per_minute",
    "submits_per_minute",
    "max_active_jobs",
    "max_queue_depth",
    "max_request_bytes",
    "estimate_base_seconds",
    "estimate_step_seconds",
    "webhook_allow_networks",
    "webhook_timeout",
    "webhook_max_attempts",
    "webhook_backoff",
    "sync_timeout",
    "lease_timeout",
    "heartbeat_interval",
    "max_attempts",
    "db_pool_size",
    "metrics_port",
    "body_timeout",
    "max_bodies_in_flight_bytes",
)


def _tunables(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(TUNABLE))
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name in TUNABLE:
        value = overrides.get(name)
        if value is None:
            value = os.environ.get(f"STICKER_MAKER_{name.upper()}") or None
        if value is None:
            continue
        values[name] = _convert(name, str(types[name]), value)
    return values


def _convert(name: str, type_name: str, value: Any) -> Any:
    from sticker_maker.errors import InvalidInput

    try:
        if type_name.startswith("tuple"):  # CIDR networks
            import ipaddress

            items = value.split(",") if isinstance(value, str) else list(value)
            networks = tuple(str(i).strip() for i in items if str(i).strip())
            for net in networks:
                ipaddress.ip_network(net, strict=False)
            return networks
        result = int(value) if type_name == "int" else float(value)
    except (TypeError, ValueError):
        kind = "comma-separated CIDR networks" if type_name.startswith("tuple") else "a number"
        raise InvalidInput(
            f"setting {name} (env STICKER_MAKER_{name.upper()}) must be {kind}, got {value!r}",
            name,
        ) from None
    if result < 0:
        raise InvalidInput(f"setting {name} must be ≥ 0, got {value!r}", name)
    return result


def _check_scale(values: dict[str, Any]) -> dict[str, Any]:
    """Leases need positive numbers, and heartbeats well inside the lease."""
    from sticker_maker.errors import InvalidInput

    for name in ("lease_timeout", "heartbeat_interval", "max_attempts", "db_pool_size"):
        if name in values and values[name] <= 0:
            raise InvalidInput(
                f"setting {name} (env STICKER_MAKER_{name.upper()}) must be greater than 0, "
                f"got {values[name]!r}",
                name,
            )
    lease = values.get("lease_timeout", Settings.lease_timeout)
    beat = values.get("heartbeat_interval", Settings.heartbeat_interval)
    if beat >= lease:
        raise InvalidInput(
            f"heartbeat_interval ({beat:g}s) must be shorter than lease_timeout ({lease:g}s); "
            "a third of it is a good value",
            "heartbeat_interval",
        )
    return values
