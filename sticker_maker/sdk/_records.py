"""What the SDK's account, key, preset, file, export and event calls hand back.

Plain records (the same for ``Client`` and ``AsyncClient``): each keeps the service's
answer in ``raw`` for fields this version of the SDK does not name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Limits:
    """A key's limits in force (a key's own, else the service's default; 0: none)."""

    requests_per_minute: int = 0
    submits_per_minute: int = 0
    max_active_jobs: int = 0

    @classmethod
    def _parse(cls, data: dict[str, Any] | None) -> Limits:
        data = data or {}
        return cls(
            int(data.get("requests_per_minute") or 0),
            int(data.get("submits_per_minute") or 0),
            int(data.get("max_active_jobs") or 0),
        )


@dataclass(frozen=True)
class Key:
    """An API key as the service describes it (never its secret)."""

    id: str
    prefix: str
    label: str
    scope: str  # "user" | "admin"
    #: content safety level set on the key (None: the service default)
    safety: str | None = None
    #: credits it can spend now (None where the service did not say)
    balance: float | None = None
    limits: Limits = field(default_factory=Limits)
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> Key:
        balance = data.get("balance")
        return cls(
            id=data["id"],
            prefix=data.get("prefix", ""),
            label=data.get("label") or "",
            scope=data.get("scope", "user"),
            safety=data.get("safety"),
            balance=None if balance is None else float(balance),
            limits=Limits._parse(data.get("limits")),
            created_at=_time(data.get("created_at")),
            last_used_at=_time(data.get("last_used_at")),
            revoked_at=_time(data.get("revoked_at")),
            raw=data,
        )


@dataclass(frozen=True)
class NewKey:
    """A key just created or rotated: ``secret`` is the full key, shown this once."""

    key: Key
    secret: str = field(repr=False)

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> NewKey:
        return cls(Key._parse(data["key"]), data["secret"])


@dataclass(frozen=True)
class Account:
    """The calling key's account: what it can spend, what is held, its limits and ledger."""

    key: Key
    #: credits spendable now (running jobs' reservations already taken out)
    balance: float
    #: credits held by running jobs
    reserved: float
    active_jobs: int
    limits: Limits
    webhook_secret: str | None = field(default=None, repr=False)
    #: ledger rows, newest first: ``{"kind": "grant" | "reserve" | "refund" | "settle", ...}``
    usage: list[dict[str, Any]] = field(default_factory=list, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> Account:
        return cls(
            key=Key._parse(data["key"]),
            balance=float(data.get("balance") or 0.0),
            reserved=float(data.get("reserved") or 0.0),
            active_jobs=int(data.get("active_jobs") or 0),
            limits=Limits._parse(data.get("limits")),
            webhook_secret=data.get("webhook_secret"),
            usage=list(data.get("usage") or []),
            raw=data,
        )


@dataclass(frozen=True)
class Preset:
    """A preset the service offers (``generate(..., preset=name)``; aliases work too)."""

    name: str
    aliases: tuple[str, ...] = ()
    base: str = ""
    lora: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    price_per_second: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> Preset:
        return cls(
            name=data["name"],
            aliases=tuple(data.get("aliases") or ()),
            base=data.get("base") or "",
            lora=data.get("lora"),
            scheduler=data.get("scheduler"),
            steps=data.get("steps"),
            guidance_scale=data.get("guidance_scale"),
            width=data.get("width"),
            height=data.get("height"),
            price_per_second=data.get("price_per_second"),
            raw=data,
        )


@dataclass(frozen=True)
class File:
    """A file uploaded to ``/v1/files``: pass ``url`` (or the File) as an image input."""

    id: str
    name: str
    content_type: str
    size: int
    #: the file's address on the service: an image input the uploading key may use
    url: str
    sha256: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    #: when retention deletes it
    expires_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> File:
        return cls(
            id=data["id"],
            name=data.get("name", ""),
            content_type=data.get("content_type", ""),
            size=int(data.get("size") or 0),
            url=(data.get("urls") or {}).get("get", ""),
            sha256=(data.get("checksums") or {}).get("sha256", ""),
            metadata=dict(data.get("metadata") or {}),
            created_at=_time(data.get("created_at")),
            expires_at=_time(data.get("expires_at")),
            raw=data,
        )


_FILENAME = re.compile(r'filename="?([^";]+)"?')


@dataclass(frozen=True)
class Download:
    """Bytes the service made on request (an export, a pack), with its suggested name."""

    data: bytes = field(repr=False)
    filename: str
    content_type: str

    @classmethod
    def _parse(cls, response: Any, fallback: str) -> Download:
        match = _FILENAME.search(response.headers.get("content-disposition", ""))
        name = Path(match.group(1)).name if match else fallback
        return cls(response.content, name, response.headers.get("content-type", ""))

    def save(self, path: str | Path = ".") -> Path:
        """Write to ``path``: a file name, or a folder (existing, or ending in ``/``) to put
        it in as :attr:`filename`."""
        target = Path(path)
        if target.is_dir() or str(path).endswith(("/", "\\")):
            target = target / self.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class Event:
    """One server-sent event of ``/v1/jobs/{id}/events``.

    ``name``: ``queue`` (``{"position": n}``), ``progress`` (``{"step", "total"}``),
    ``logs`` (``{"text"}``), ``preview`` (``{"image": data URL}``) and, last, ``done``
    (the job's envelope; :attr:`job` has it as a job object)."""

    name: str
    data: Any
    #: the finished job, on the ``done`` event
    job: Any = None
