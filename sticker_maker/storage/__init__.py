"""Where output files live: a local folder by default, or an S3-compatible bucket."""

from __future__ import annotations

from pathlib import Path

from sticker_maker.storage.local import (
    LocalStorage,
    Storage,
    content_type,
    new_file_name,
    preview_name,
)

__all__ = [
    "LocalStorage",
    "Storage",
    "content_type",
    "new_file_name",
    "open_storage",
    "preview_name",
]


def open_storage(url: str | None, default_dir: Path) -> Storage:
    """``None`` → ``default_dir``; ``s3://bucket?endpoint=…`` → S3; anything else → a folder."""
    if not url:
        return LocalStorage(default_dir)
    if url.startswith("s3://"):
        from sticker_maker.storage.s3 import S3Storage

        return S3Storage.from_url(url)
    return LocalStorage(Path(url.removeprefix("file://")).expanduser())
