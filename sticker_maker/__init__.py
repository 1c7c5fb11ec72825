"""sticker-maker: self-hostable text-to-sticker service.

The top-level package is the light client side (no torch import): the server,
worker and engine live in subpackages that are imported only when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
