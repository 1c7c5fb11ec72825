"""The HTTP API: native ``/v1/jobs``, the sticker-maker-compatible ``/api/v1``, files."""

from sticker_maker.api.app import create_app

__all__ = ["create_app"]
