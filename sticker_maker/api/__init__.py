"""The HTTP API: native ``/v1/jobs``, sticker-maker-compatible ``/api/v1``, Segmind-compatible
``/v1/<model>`` and ``/v2``, files."""

from sticker_maker.api.app import create_app

__all__ = ["create_app"]
