"""Output storage. Names are unguessable (``secrets.token_urlsafe``) so a URL is a capability."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(png|webp|jpg|zip|svg)$")
_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "zip": "application/zip",
    "svg": "image/svg+xml",
}


def content_type(name: str) -> str:
    return _TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")


def new_file_name(ext: str = "png") -> str:
    return f"{secrets.token_urlsafe(24)}.{ext}"


def preview_name(job_id: str) -> str:
    """Where a running job's latest live preview is kept (a fixed name per job, which
    only the job's id leads to; deleted when the job ends)."""
    digest = hashlib.sha256(f"sticker-maker preview {job_id}".encode()).hexdigest()
    return f"{digest[:40]}.jpg"


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


class Storage(Protocol):
    """Where outputs live. ``get``/``open`` raise FileNotFoundError for unknown names."""

    def put(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> bytes: ...
    def path(self, name: str) -> Path | None: ...
    def delete(self, name: str) -> None: ...
    def open(self, name: str) -> tuple[Iterator[bytes], int]: ...
    def redirect_url(self, name: str) -> str | None: ...
    def reachable(self) -> bool: ...


class LocalStorage:
    """Files in one folder. Writes are atomic (temp file + rename): no half-written output."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        if not valid_name(name):
            raise FileNotFoundError(name)
        return self.root / name[:2] / name

    def put(self, name: str, data: bytes) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def path(self, name: str) -> Path | None:
        p = self._path(name)
        return p if p.is_file() else None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def open(self, name: str) -> tuple[Iterator[bytes], int]:
        path = self._path(name)
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while block := fh.read(64 * 1024):
                    yield block

        return chunks(), size

    def redirect_url(self, name: str) -> str | None:
        return None

    def reachable(self) -> bool:
        """The folder is there (``/ready``); a full disk still reads."""
        return self.root.is_dir()
