"""sticker-maker: self-hostable text-to-sticker service, and its Python SDK.

The top-level package is the light client side: ``import sticker_maker`` loads
nothing heavy (no torch, no FastAPI, not even httpx until a client name is
used). The server, worker and engine live in subpackages imported only when used.

>>> from sticker_maker import Client
>>> with Client("http://127.0.0.1:8000", api_key="sm_...") as client:
...     job = client.generate("cute cat", seed=42)
...     job.save("stickers/")

Exceptions are listed, with the HTTP status each comes from, in
:mod:`sticker_maker.sdk._errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AsyncClient",
    "AsyncJob",
    "AsyncOutputFile",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Download",
    "Event",
    "File",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "Job",
    "JobCanceledError",
    "JobFailedError",
    "Key",
    "Limits",
    "Metrics",
    "NewKey",
    "NotFoundError",
    "OutputFile",
    "PermissionDeniedError",
    "Preset",
    "Progress",
    "RateLimitError",
    "ServerError",
    "WaitTimeoutError",
    "__version__",
]

if TYPE_CHECKING:
    from sticker_maker.sdk import (
        Account,
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AsyncClient,
        AsyncJob,
        AsyncOutputFile,
        AuthenticationError,
        Client,
        ConflictError,
        Download,
        Event,
        File,
        InsufficientCreditsError,
        InvalidRequestError,
        Job,
        JobCanceledError,
        JobFailedError,
        Key,
        Limits,
        Metrics,
        NewKey,
        NotFoundError,
        OutputFile,
        PermissionDeniedError,
        Preset,
        Progress,
        RateLimitError,
        ServerError,
        WaitTimeoutError,
    )


def __getattr__(name: str) -> Any:
    """Load the SDK on first use of one of its names (PEP 562)."""
    if name in __all__ and name != "__version__":
        import importlib

        value = getattr(importlib.import_module("sticker_maker.sdk"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sticker_maker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
