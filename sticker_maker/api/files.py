"""Output files by their unguessable names."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from sticker_maker.api.services import Services, services
from sticker_maker.errors import NotFound

router = APIRouter(tags=["files"])

_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "zip": "application/zip",
    "svg": "image/svg+xml",
}


@router.get("/files/{name}", summary="Download an output file")
def get_file(name: str, svc: Services = Depends(services)) -> Response:
    try:
        path = svc.storage.path(name)
    except FileNotFoundError:
        path = None
    if path is None:
        raise NotFound(f"file {name} not found (outputs are kept for a limited time)")
    media_type = _TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"}
    )
