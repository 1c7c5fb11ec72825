"""The Python SDK: ``Client`` / ``AsyncClient`` for a sticker-maker service.

Import the public names from the package root (``from sticker_maker import Client``);
the modules here are private. Errors: see :mod:`sticker_maker.sdk._errors`.
"""

from sticker_maker.sdk._client import AsyncClient, AsyncJobs, Client, Jobs
from sticker_maker.sdk._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    InsufficientCreditsError,
    InvalidRequestError,
    JobCanceledError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from sticker_maker.sdk._models import (
    AsyncJob,
    AsyncOutputFile,
    Job,
    Metrics,
    OutputFile,
    Progress,
)
from sticker_maker.sdk._records import (
    Account,
    Download,
    Event,
    File,
    Key,
    Limits,
    NewKey,
    Preset,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AsyncClient",
    "AsyncJob",
    "AsyncJobs",
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
    "Jobs",
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
]
