"""Image inputs given as text: a file of ours, a ``data:`` URL, or a public URL.

Wherever an input is an image, it may be sent as

* the URL of a file uploaded with ``POST /v1/files`` (``…/v1/files/{id}``), or of an
  output file (``…/files/<name>``): read from storage, only when the caller's key owns it;
* a ``data:`` URL (``data:image/png;base64,…``), as the replicate client sends with
  ``file_encoding_strategy="base64"``;
* any other ``http(s)`` URL: fetched only through the webhook guard (public addresses
  only, the checked address connected to, no redirects, size and time caps;
  ``accounts.webhook_sender.get``).

Anything else is an InvalidInput naming the field (400 natively, 422 on the Replicate
routes). The bytes are then checked like an upload (``api.uploads.check_image``).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sticker_maker.accounts import ApiKey
from sticker_maker.accounts.webhook_sender import DeliveryRefused, TooLarge, get
from sticker_maker.api.services import Services
from sticker_maker.api.uploads import Upload, check_image
from sticker_maker.bounds import MAX_UPLOAD_BYTES
from sticker_maker.db import files, uploads
from sticker_maker.errors import InvalidInput
from sticker_maker.storage.local import valid_name

_DATA = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,", re.I)
_UPLOAD_PATH = re.compile(r"^/v1/files/([A-Za-z0-9_-]{1,40})/?$")
_OUTPUT_PATH = re.compile(r"^/files/([^/]+)$")
#: seconds per step (connect, each read) when fetching a public URL
FETCH_TIMEOUT = 10.0


async def image_input(value: str, field: str, key: ApiKey, svc: Services, root: str) -> Upload:
    """The checked image that ``value`` names (see the module doc), or InvalidInput."""
    data = await run_in_threadpool(_read, value, field, key, svc, root)
    return await run_in_threadpool(check_image, data, field)


def _read(value: str, field: str, key: ApiKey, svc: Services, root: str) -> bytes:
    if value[:5].lower() == "data:":
        return _data_url(value, field)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            "must be an image file, a data: URL or an http(s) URL of an image", field
        )
    if f"{parts.scheme}://{parts.netloc}" == root:
        return _ours(parts.path, field, key, svc)
    try:
        status, body = get(
            value,
            allow_networks=svc.settings.webhook_allow_networks,
            timeout=FETCH_TIMEOUT,
            max_bytes=MAX_UPLOAD_BYTES,
        )
    except DeliveryRefused as exc:  # the guard's reason, worded for an input
        reason = str(exc).removeprefix("webhook: ").replace("webhooks go to", "URLs are read from")
        raise InvalidInput(f"cannot be fetched: {reason}", field) from None
    except TooLarge as exc:
        raise InvalidInput(
            f"is too large ({exc}); the limit is {MAX_UPLOAD_BYTES} bytes", field
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise InvalidInput(f"could not be fetched ({type(exc).__name__}: {exc})", field) from None
    if status != 200:
        raise InvalidInput(f"could not be fetched: the server answered HTTP {status}", field)
    return body


def _data_url(value: str, field: str) -> bytes:
    match = _DATA.match(value)
    if match is None or not match.group(3):
        raise InvalidInput("must be a base64 data: URL (data:image/png;base64,…)", field)
    payload = value[match.end() :]
    if len(payload) > (MAX_UPLOAD_BYTES * 4) // 3 + 4:
        raise InvalidInput(f"is larger than the limit of {MAX_UPLOAD_BYTES} bytes", field)
    try:
        return base64.b64decode(unquote(payload), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("is not valid base64", field) from None


def _ours(path: str, field: str, key: ApiKey, svc: Services) -> bytes:
    """A file of this service that the key owns (an upload or an output)."""
    name = None
    with svc.db.read() as conn:
        if match := _UPLOAD_PATH.match(path):
            name = conn.execute(
                select(uploads.c.name).where(
                    uploads.c.id == match.group(1), uploads.c.key_id == key.id
                )
            ).scalar()
        elif (match := _OUTPUT_PATH.match(path)) and valid_name(match.group(1)):
            name = conn.execute(
                select(files.c.name).where(files.c.name == match.group(1), files.c.key_id == key.id)
            ).scalar()
    if name is None:
        raise InvalidInput("names no file of yours here (files are kept for a limited time)", field)
    try:
        return svc.storage.get(name)
    except FileNotFoundError:
        raise InvalidInput(
            "names a file that is gone (files are kept for a limited time)", field
        ) from None
