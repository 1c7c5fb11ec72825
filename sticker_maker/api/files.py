"""Output files by their unguessable names.

A file URL is a capability: ``/files/<32 random characters>.png`` works with a
plain GET and no headers (as the hosted services' image URLs do; existing
clients download them that way), for as long as retention keeps the file
(``retention_seconds`` after the job completed, then 404). A request that does
carry an API key is held to it: a key that is not the file's owner gets 404, as
for another key's job. No route lists files.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from sqlalchemy import select

from sticker_maker.accounts import ApiKey
from sticker_maker.api.auth import optional_key
from sticker_maker.api.services import Services, services
from sticker_maker.db import files
from sticker_maker.errors import NotFound
from sticker_maker.storage.local import valid_name

router = APIRouter(tags=["files"])

_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "zip": "application/zip",
    "svg": "image/svg+xml",
}


def _not_found(name: str) -> NotFound:
    return NotFound(f"file {name[:100]} not found (outputs are kept for a limited time)")


@router.get("/files/{name}", summary="Download an output file")
def get_file(
    name: str,
    key: ApiKey | None = Depends(optional_key),
    svc: Services = Depends(services),
) -> Response:
    if not valid_name(name):
        raise _not_found(name)
    if key is not None:
        with svc.db.read() as conn:
            owner = conn.execute(select(files.c.key_id).where(files.c.name == name)).scalar()
        if owner != key.id:
            raise _not_found(name)
    try:
        path = svc.storage.path(name)
    except FileNotFoundError:
        path = None
    if path is None:
        raise _not_found(name)
    media_type = _TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"}
    )
