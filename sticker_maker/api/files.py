"""Output files by their unguessable names.

Local storage is served from disk. S3 storage is streamed through the API (so
output URLs work wherever the API is reachable), or answered with a redirect to
a presigned URL when the storage URL says ``redirect=true``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from sticker_maker.api.services import Services, services
from sticker_maker.errors import NotFound, ServiceBusy
from sticker_maker.storage import content_type

router = APIRouter(tags=["files"])

_CACHE = {"Cache-Control": "private, max-age=3600"}


@router.get("/files/{name}", summary="Download an output file")
def get_file(name: str, svc: Services = Depends(services)) -> Response:
    gone = NotFound(f"file {name} not found (outputs are kept for a limited time)")
    try:
        path = svc.storage.path(name)
        if path is not None:
            return FileResponse(path, media_type=content_type(name), headers=_CACHE)
        url = svc.storage.redirect_url(name)
        if url is not None:
            return RedirectResponse(url, status_code=307)
        chunks, size = svc.storage.open(name)
    except FileNotFoundError:
        raise gone from None
    except Exception as exc:
        if _is_missing(exc):
            raise gone from None
        raise ServiceBusy(f"output storage is unreachable right now ({exc})", 5) from None
    headers = {**_CACHE, "Content-Length": str(size)}
    return StreamingResponse(chunks, media_type=content_type(name), headers=headers)


def _is_missing(exc: Exception) -> bool:
    """A storage client's 'no such object' that is not a FileNotFoundError (S3 HEAD → 404)."""
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", "")) if response else ""
    return code in ("404", "NoSuchKey", "NotFound")
