"""Image uploads: a multipart form read with bounded size, and the image checked.

Every check answers 400 naming the ``image`` field (or the form field at fault)
before anything is stored or queued:

* the body is read as it arrives and refused once it passes ``MAX_UPLOAD_BYTES``
  (plus a little room for the other form fields), so a huge upload never fills the
  disk; one file and a few short fields at most;
* the image must decode completely as PNG, JPEG or WebP (a truncated or corrupt file
  is refused here, not in the worker), with each side from ``MIN_SIDE`` to
  ``MAX_SIDE`` px, read from its header before any pixels are decoded (so a small file
  that claims a huge size, a decompression bomb, is refused without decoding it).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from sticker_maker.errors import InvalidInput

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_SIDE = 4096
MIN_SIDE = 16
#: room for the multipart framing and the short option fields around the file
FORM_OVERHEAD = 64 * 1024
MAX_FIELDS = 16
MAX_FIELD_BYTES = 1024
#: Pillow format → (content type, file extension in storage)
FORMATS = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "WEBP": ("image/webp", "webp"),
}
_ALLOWED = "PNG, JPEG or WebP"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Upload:
    """A checked image upload: its bytes as sent and what they hold."""

    data: bytes
    width: int  # upright (EXIF orientation applied)
    height: int
    content_type: str
    extension: str


def _too_large(size: int | None = None) -> InvalidInput:
    got = f" (got {size / 1024 / 1024:.1f} MiB)" if size else ""
    return InvalidInput(
        f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB{got}; "
        "send a smaller image (each side at most "
        f"{MAX_SIDE} px)",
        "image",
    )


async def _capped(request: Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _too_large()
        yield chunk


async def read_form(request: Request) -> tuple[UploadFile, dict[str, str], FormData]:
    """The ``image`` file and the other (non-empty) text fields of a multipart form.

    The caller closes the returned ``FormData`` (its file may be spooled to disk).
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInput(
            f"send a multipart/form-data request with the image ({_ALLOWED}) in a file "
            "field named 'image'",
            "image",
        )
    limit = MAX_UPLOAD_BYTES + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared))
    parser = MultiPartParser(
        request.headers,
        _capped(request, limit),
        max_files=1,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"the multipart form is malformed: {exc.message}", "image") from None
    image = form.get("image")
    if not isinstance(image, UploadFile):
        await form.close()
        if image is None:
            raise InvalidInput(
                f"is required: a {_ALLOWED} file sent as form field 'image'", "image"
            )
        raise InvalidInput(f"must be a file ({_ALLOWED}), not a text field", "image")
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name == "image":
            continue
        if not isinstance(value, str):
            await form.close()
            raise InvalidInput("must be a text field, not a file", name)
        if value.strip():  # an empty field (a blank HTML input) means "the default"
            fields[name] = value.strip()
    return image, fields, form


def check_image(data: bytes) -> Upload:
    """Decode ``data`` completely and check its format and size, or InvalidInput."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidInput(f"is empty: send a {_ALLOWED} file", "image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _too_large(len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=tuple(FORMATS)) as image:
                width, height = image.size
                _check_size(width, height)
                image.load()  # every pixel: a truncated or corrupt file fails here
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
                fmt = image.format or ""
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            f"claims more pixels than allowed (each side at most {MAX_SIDE} px)", "image"
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput(f"is not a {_ALLOWED} image", "image") from None
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, EOFError…
        raise InvalidInput(
            f"could not be decoded as a {_ALLOWED} image ({type(exc).__name__}: {exc})", "image"
        ) from None
    if orientation in (5, 6, 7, 8):  # rotated a quarter turn: the upright size
        width, height = height, width
    content_type, extension = FORMATS[fmt]
    return Upload(data, width, height, content_type, extension)


def _check_size(width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE or min(width, height) < MIN_SIDE:
        raise InvalidInput(
            f"is {width}x{height} px; each side must be from {MIN_SIDE} to {MAX_SIDE} px "
            f"(at most {MAX_SIDE * MAX_SIDE / 1e6:.1f} MP)",
            "image",
        )


__all__ = ["MAX_SIDE", "MAX_UPLOAD_BYTES", "MIN_SIDE", "Upload", "check_image", "read_form"]
