"""Output files by their unguessable names.

A file URL is a capability: ``/files/<32 random characters>.png`` works with a
plain GET and no headers (as the hosted services' image URLs do; existing
clients download them that way), for as long as retention keeps the file
(``retention_seconds`` after the job completed, then 404). A request that does
carry an API key is held to it: a key that is not the file's owner gets 404, as
for another key's job. No route lists files.

Local storage is served from disk. S3 storage is streamed through the API (so
output URLs work wherever the API is reachable), or answered with a redirect to
a presigned URL when the storage URL says ``redirect=true``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select

from sticker_maker.accounts import ApiKey
from sticker_maker.api.auth import optional_key
from sticker_maker.api.contract import BINARY, doc
from sticker_maker.api.services import Services, services
from sticker_maker.db import files
from sticker_maker.errors import NotFound, ServiceBusy
from sticker_maker.storage import content_type
from sticker_maker.storage.local import valid_name

router = APIRouter(tags=["files"])

_CACHE = {"Cache-Control": "private, max-age=3600"}


def _not_found(name: str) -> NotFound:
    return NotFound(f"file {name[:100]} not found (outputs are kept for a limited time)")


@router.get(
    "/files/{name}",
    summary="Download an output file",
    response_class=Response,
    **doc(
        content={t: BINARY for t in ("image/png", "image/webp", "image/jpeg")},
        others={307: None},
    ),
)
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
        if path is not None:
            return FileResponse(path, media_type=content_type(name), headers=_CACHE)
        url = svc.storage.redirect_url(name)
        if url is not None:
            return RedirectResponse(url, status_code=307)
        chunks, size = svc.storage.open(name)
    except FileNotFoundError:
        raise _not_found(name) from None
    except Exception as exc:
        if _is_missing(exc):
            raise _not_found(name) from None
        raise ServiceBusy(f"output storage is unreachable right now ({exc})", 5) from None
    headers = {**_CACHE, "Content-Length": str(size)}
    return StreamingResponse(chunks, media_type=content_type(name), headers=headers)


def _is_missing(exc: Exception) -> bool:
    """A storage client's 'no such object' that is not a FileNotFoundError (S3 HEAD → 404)."""
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", "")) if response else ""
    return code in ("404", "NoSuchKey", "NotFound")
