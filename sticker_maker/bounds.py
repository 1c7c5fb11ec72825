"""Input bounds in one place, for image inputs and whole requests.

Generation parameters are bounded in :mod:`sticker_maker.params` (sides 64-2048
and multiples of 8, steps ≤ 100, samples ≤ 4, prompts ≤ 2000 characters). Whole
request bodies are capped by ``Settings.max_request_bytes`` (413). Image inputs
(for the routes that take them) go through :func:`check_image` or
:func:`image_from_base64` *before* anything decodes their pixels, so a small file
that claims a huge size (a decompression bomb) is refused from its header.
"""

from __future__ import annotations

import base64
import binascii
import io

from sticker_maker.errors import InvalidInput

#: default cap on a request body (``Settings.max_request_bytes``)
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: an image inside a JSON body (base64), encoded (PNG/JPEG/WebP bytes)
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: an image sent as a multipart file upload (``/v1/cutouts``, ``/v1/splits``); those
#: routes bound their own body, so this may exceed ``max_request_bytes``
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: the smallest side of an uploaded image worth cutting out
MIN_UPLOAD_SIDE = 16
#: an uploaded image's sides and pixel count, read from its header
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = 4096 * 4096
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


def check_image(
    data: bytes, field: str = "image", *, max_bytes: int = MAX_IMAGE_BYTES
) -> tuple[int, int, str]:
    """``(width, height, format)`` of an acceptable image, else InvalidInput naming ``field``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidInput("is empty", field)
    if len(data) > max_bytes:
        raise InvalidInput(
            f"is {len(data)} bytes; the limit is {max_bytes} bytes "
            f"({max_bytes // (1024 * 1024)} MiB)",
            field,
        )
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height, fmt = image.width, image.height, image.format or ""
    except Image.DecompressionBombError:
        raise InvalidInput(f"has more than {MAX_IMAGE_PIXELS} pixels", field) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidInput(f"is not an image ({', '.join(IMAGE_FORMATS)})", field) from None
    if fmt not in IMAGE_FORMATS:
        raise InvalidInput(f"is {fmt or 'unknown'}; allowed: {', '.join(IMAGE_FORMATS)}", field)
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InvalidInput(
            f"is {width}x{height}; each side must be ≤ {MAX_IMAGE_SIDE} and the whole "
            f"≤ {MAX_IMAGE_PIXELS} pixels",
            field,
        )
    return width, height, fmt


def image_from_base64(text: str, field: str = "image") -> bytes:
    """Decode a base64 image (a ``data:image/…;base64,`` prefix is allowed) and check it."""
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    if len(payload) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidInput(f"is larger than {MAX_IMAGE_BYTES} bytes once decoded", field)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("is not valid base64", field) from None
    check_image(data, field)
    return data
