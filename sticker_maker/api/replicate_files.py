"""``/v1/files``: files uploaded for use as inputs (the replicate client's ``files``).

``POST /v1/files`` (multipart, the file in field ``content``, optional ``metadata`` JSON)
checks the file as an image upload (``api.uploads``: size, type, every pixel decoded),
stores it and answers ``{id, name, content_type, size, etag, checksums, metadata,
created_at, expires_at, urls: {get}}``. ``urls.get`` is what to pass as an image input
(``api.image_inputs``). Files belong to the key that uploaded them (another key gets
404), are listed newest first, deleted with ``DELETE`` (204), and deleted by retention
``retention_seconds`` after the upload (``expires_at``), like outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete, insert, select
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey
from sticker_maker.api import schemas
from sticker_maker.api.auth import current_key
from sticker_maker.api.contract import BINARY, doc, form_doc
from sticker_maker.api.render import base_url, iso
from sticker_maker.api.services import Services, services
from sticker_maker.api.uploads import check_image, read_form
from sticker_maker.bounds import MAX_UPLOAD_BYTES
from sticker_maker.db import uploads
from sticker_maker.errors import InvalidInput, NotFound
from sticker_maker.storage import new_file_name

router = APIRouter(tags=["Replicate compatible"])

#: the path the body-size middleware leaves to this route (it bounds its own body)
UPLOAD_PATH = "/v1/files"
MAX_LISTED = 100
MAX_METADATA = 4096
FILE_FORM = {
    "content": {
        "type": "string",
        "format": "binary",
        "description": "the image: PNG, JPEG or WebP (checked as /v1/cutouts checks uploads)",
    },
    "metadata": {"type": "string", "description": "a JSON object to keep with the file"},
}


def _file_body(row: Any, root: str, retention: float) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["filename"],
        "content_type": row["content_type"],
        "size": row["size"],
        "etag": row["sha256"][:32],
        "checksums": {"sha256": row["sha256"]},
        "metadata": json.loads(row["metadata"]),
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["created_at"] + retention),
        "urls": {"get": f"{root}/v1/files/{row['id']}"},
    }


def _metadata(fields: dict[str, str]) -> dict[str, Any]:
    text = fields.get("metadata", "{}")
    if len(text) > MAX_METADATA:
        raise InvalidInput(f"is longer than {MAX_METADATA} characters", "metadata")
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput("is not valid JSON", "metadata") from None
    if not isinstance(value, dict):
        raise InvalidInput("must be a JSON object", "metadata")
    return value


@router.post(
    UPLOAD_PATH,
    status_code=201,
    summary="Upload a file to use as an image input",
    openapi_extra=form_doc(FILE_FORM, ("content",)),
    **doc(schemas.File, 413, status=201),
)
async def create_file(
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    content, fields, form = await read_form(request, "content")
    try:
        metadata = _metadata(fields)
        data = await content.read(MAX_UPLOAD_BYTES + 1)  # type: ignore[union-attr]
        filename = (getattr(content, "filename", None) or "file")[:255]
    finally:
        await form.close()
    upload = await run_in_threadpool(check_image, data, "content")
    row = {
        "id": secrets.token_urlsafe(18).replace("-", "a").replace("_", "b").lower(),
        "key_id": key.id,
        "name": new_file_name(upload.extension),
        "filename": filename,
        "content_type": upload.content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "metadata": json.dumps(metadata),
        "created_at": time.time(),
    }

    def store() -> None:
        svc.storage.put(row["name"], data)
        try:
            with svc.db.write() as conn:
                conn.execute(insert(uploads).values(**row))
        except BaseException:
            svc.storage.delete(row["name"])
            raise

    await run_in_threadpool(store)
    return _file_body(row, base_url(request, svc), svc.settings.retention_seconds)


def _row(svc: Services, file_id: str, key: ApiKey) -> Any:
    with svc.db.read() as conn:
        row = (
            conn.execute(select(uploads).where(uploads.c.id == file_id, uploads.c.key_id == key.id))
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"file {file_id[:64]} not found (files are kept for a limited time)")
    return row


@router.get(UPLOAD_PATH, summary="Your uploaded files, newest first", **doc(schemas.FilePage))
def list_files(
    request: Request, key: ApiKey = Depends(current_key), svc: Services = Depends(services)
) -> dict[str, Any]:
    with svc.db.read() as conn:
        rows = (
            conn.execute(
                select(uploads)
                .where(uploads.c.key_id == key.id)
                .order_by(uploads.c.created_at.desc())
                .limit(MAX_LISTED)
            )
            .mappings()
            .all()
        )
    root, keep = base_url(request, svc), svc.settings.retention_seconds
    return {"results": [_file_body(r, root, keep) for r in rows], "next": None, "previous": None}


@router.get(UPLOAD_PATH + "/{file_id}", summary="One uploaded file", **doc(schemas.File))
def get_file(
    file_id: str,
    request: Request,
    key: ApiKey = Depends(current_key),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    row = _row(svc, file_id, key)
    return _file_body(row, base_url(request, svc), svc.settings.retention_seconds)


@router.get(
    UPLOAD_PATH + "/{file_id}/download",
    summary="An uploaded file's bytes",
    response_class=Response,
    **doc(content={"image/png": BINARY}),
)
def download_file(
    file_id: str, key: ApiKey = Depends(current_key), svc: Services = Depends(services)
) -> Response:
    row = _row(svc, file_id, key)
    try:
        data = svc.storage.get(row["name"])
    except FileNotFoundError:
        raise NotFound(f"file {file_id} is gone") from None
    return Response(data, media_type=row["content_type"])


@router.delete(
    UPLOAD_PATH + "/{file_id}",
    status_code=204,
    summary="Delete an uploaded file",
    **doc(status=204, description="Deleted"),
)
def delete_file(
    file_id: str, key: ApiKey = Depends(current_key), svc: Services = Depends(services)
) -> Response:
    row = _row(svc, file_id, key)
    with svc.db.write() as conn:
        conn.execute(delete(uploads).where(uploads.c.id == row["id"]))
    with contextlib.suppress(FileNotFoundError):
        svc.storage.delete(row["name"])
    return Response(status_code=204)
