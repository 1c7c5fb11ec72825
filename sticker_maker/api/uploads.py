"""Image uploads: a multipart form read with bounded size, and the image checked.

Every check answers 400 naming the ``image`` field (or the form field at fault)
before anything is stored or queued. The limits live in :mod:`sticker_maker.bounds`:

* the body is read as it arrives and refused once it passes ``MAX_UPLOAD_BYTES``
  (plus a little room for the other form fields), so a huge upload never fills the
  disk; one file and a few short fields at most (these routes are exempt from the
  service-wide ``max_request_bytes``, which is smaller);
* the header is checked first (:func:`sticker_maker.bounds.check_image`: PNG, JPEG or
  WebP, each side ≤ ``MAX_IMAGE_SIDE``), so a small file that claims a huge size (a
  decompression bomb) is refused without decoding it; then every pixel is decoded, so
  a truncated or corrupt file is refused here, not in the worker;
* what is stored is the decoded pixels encoded again as a PNG (EXIF orientation
  applied): no text, EXIF, ICC or private chunk of the upload is kept, so a 15 MB
  ``tEXt`` chunk (or a payload hidden after the image) never reaches storage.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from sticker_maker import bounds
from sticker_maker.bounds import IMAGE_FORMATS, MAX_IMAGE_SIDE, MAX_UPLOAD_BYTES, MIN_UPLOAD_SIDE
from sticker_maker.errors import InvalidInput

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

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
_ALLOWED = "PNG, JPEG or WebP"  # bounds.IMAGE_FORMATS


@dataclass(frozen=True)
class Upload:
    """A checked image upload, re-encoded as a PNG (pixels only), and what it holds."""

    data: bytes
    width: int  # upright (EXIF orientation applied)
    height: int
    content_type: str
    extension: str


def _too_large(size: int | None = None, field: str = "image") -> InvalidInput:
    got = f" (the request has {size} bytes)" if size else ""
    return InvalidInput(
        f"is larger than the limit of {MAX_UPLOAD_BYTES} bytes "
        f"({MAX_UPLOAD_BYTES // (1024 * 1024)} MiB){got}; send a smaller image",
        field,
    )


async def _capped(request: Request, limit: int, field: str) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _too_large(field=field)
        yield chunk


async def read_form(
    request: Request, field: str = "image", *, text_ok: bool = False
) -> tuple[UploadFile | str, dict[str, str], FormData]:
    """The file in form field ``field`` and the other (non-empty) text fields of a
    multipart form. ``text_ok``: ``field`` may instead be a text field (a URL), returned
    as it is for the caller to resolve (``api.image_inputs``).

    The caller closes the returned ``FormData`` (its file may be spooled to disk).
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInput(
            f"send a multipart/form-data request with the image ({_ALLOWED}) in a file "
            f"field named '{field}'",
            field,
        )
    limit = MAX_UPLOAD_BYTES + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), field)
    parser = MultiPartParser(
        request.headers,
        _capped(request, limit, field),
        max_files=1,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"the multipart form is malformed: {exc.message}", field) from None
    image = form.get(field)
    if not isinstance(image, UploadFile) and not (text_ok and isinstance(image, str) and image):
        await form.close()
        if image is None:
            raise InvalidInput(
                f"is required: a {_ALLOWED} file sent as form field '{field}'", field
            )
        raise InvalidInput(f"must be a file ({_ALLOWED}), not a text field", field)
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name == field:
            continue
        if not isinstance(value, str):
            await form.close()
            raise InvalidInput("must be a text field, not a file", name)
        if value.strip():  # an empty field (a blank HTML input) means "the default"
            fields[name] = value.strip()
    return image, fields, form


def check_image(data: bytes, field: str = "image") -> Upload:
    """Check the header, then decode every pixel; the upload, or InvalidInput."""
    from PIL import Image

    width, height, fmt = bounds.check_image(data, field, max_bytes=MAX_UPLOAD_BYTES)
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise InvalidInput(
            f"is {width}x{height}; each side must be ≥ {MIN_UPLOAD_SIDE} (and ≤ {MAX_IMAGE_SIDE})",
            field,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                image.load()  # every pixel: a truncated or corrupt file fails here
                clean = _pixels_only(image)
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, EOFError…
        raise InvalidInput(
            f"could not be decoded as {fmt} ({type(exc).__name__}: {exc})", field
        ) from None
    out = io.BytesIO()
    clean.save(out, format="PNG", compress_level=3)
    return Upload(out.getvalue(), clean.width, clean.height, *FORMATS["PNG"])


def _pixels_only(image: PILImage) -> PILImage:
    """The upright pixels (RGB, or RGBA when the image has transparency), with no metadata."""
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(image) or image
    transparent = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    clean = upright.convert("RGBA" if transparent else "RGB")
    clean.info = {}  # nothing of the upload's chunks is written again (text, ICC, EXIF)
    return clean


__all__ = ["Upload", "check_image", "read_form"]
