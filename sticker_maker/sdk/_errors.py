"""Every exception the SDK raises, in one place.

Catch :class:`APIError` to catch them all. HTTP errors carry ``status_code``,
the server's ``code`` and ``message`` and the parsed ``body``; the job errors
carry the ``job`` as it ended.

=========================  ===========  ===================================================
exception                  HTTP status  raised when
=========================  ===========  ===================================================
APIError                   —            base class of everything below
APIConnectionError         —            the service could not be reached (refused, DNS, reset)
APITimeoutError            —            one HTTP request took longer than the client's timeout
APIStatusError             other        the service answered with an error status
InvalidRequestError        400, 422     a parameter is missing, unknown or out of range; ``fields``
                                        (``code == "content_blocked"``: the content policy
                                        refused the prompt; nothing was queued or charged)
AuthenticationError        401          no API key, a wrong one or a revoked one
PermissionDeniedError      403          the key may not do this (e.g. an admin route)
NotFoundError              404          unknown job or file, another key's job, or expired
InsufficientCreditsError   402, 406     the key's credits do not cover the job
ConflictError              409          the request clashes with the job's state
RateLimitError             429, 503     still limited (or the service busy) after the
                                        retries; ``retry_after`` in seconds
ServerError                5xx          the service failed
JobFailedError             —            the job ended ``failed``; ``job.error`` says why
                                        (``job.error_code == "content_blocked"``: the
                                        content policy refused its image)
JobCanceledError           —            the job ended ``canceled`` (a JobFailedError)
WaitTimeoutError           —            ``wait(timeout=…)`` ran out; the job keeps running
=========================  ===========  ===================================================

429 and 503 answers are retried (``max_retries``, default 2) after the server's
``Retry-After``, so a :class:`RateLimitError` means the limit outlasted them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sticker_maker.sdk._models import _JobFields


class APIError(Exception):
    """Base class of every error the SDK raises. ``message`` says what went wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(APIError):
    """The service could not be reached."""


class APITimeoutError(APIConnectionError):
    """An HTTP request timed out (raise ``timeout=`` on the client for slow links)."""


class APIStatusError(APIError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code})"


class InvalidRequestError(APIStatusError):
    """A parameter is wrong. ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.fields: dict[str, str] = fields or {}


class AuthenticationError(APIStatusError):
    """No API key, a wrong one or a revoked one."""


class PermissionDeniedError(APIStatusError):
    """The key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """Unknown job or file (jobs of other keys and expired ones look the same)."""


class InsufficientCreditsError(APIStatusError):
    """The key's credits do not cover the job."""


class ConflictError(APIStatusError):
    """The request clashes with the current state of the job."""


class RateLimitError(APIStatusError):
    """Too many requests (429) or the service is busy (503). Retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """The service failed (5xx)."""


class JobFailedError(APIError):
    """The job ended without output. ``job`` is its final state; ``job.error`` the reason."""

    def __init__(self, job: _JobFields) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or 'no reason given'}")
        self.job = job


class JobCanceledError(JobFailedError):
    """The job was canceled."""


class WaitTimeoutError(APIError):
    """Waiting ran out of time. The job keeps running: ``job.refresh()`` or wait again."""

    def __init__(self, job: _JobFields, timeout: float) -> None:
        super().__init__(
            f"job {job.id} is still {job.status} after waiting {timeout:g}s; "
            "it keeps running on the server"
        )
        self.job = job
        self.timeout = timeout


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    406: InsufficientCreditsError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitError,
    503: RateLimitError,
}


def error_for_status(
    status_code: int, body: Any, *, retry_after: float | None = None, hint: str = ""
) -> APIStatusError:
    """The exception for an error answer, from any of the service's three error envelopes."""
    message, code, fields = _parse(body)
    if not message:
        message = f"the service answered HTTP {status_code}"
    if hint:
        message = f"{message} ({hint})"
    cls = _BY_STATUS.get(status_code) or (ServerError if status_code >= 500 else APIStatusError)
    kw: dict[str, Any] = {"status_code": status_code, "code": code, "body": body}
    if cls is InvalidRequestError:
        return InvalidRequestError(message, fields=fields, **kw)
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kw)
    return cls(message, **kw)


def _parse(body: Any) -> tuple[str, str | None, dict[str, str]]:
    """(message, code, fields) from any of the error envelopes: the native one, the seed
    API's, Segmind's and the problem details of the Replicate-compatible routes."""
    if not isinstance(body, dict):
        return (body.strip()[:500] if isinstance(body, str) else ""), None, {}
    error = body.get("error")
    if isinstance(error, dict):
        fields = {
            str(f.get("field")): str(f.get("message"))
            for f in error.get("fields") or []
            if isinstance(f, dict)
        }
        return str(error.get("message") or ""), error.get("code"), fields
    if isinstance(error, str):
        return error, None, {}
    if isinstance(body.get("invalid_fields"), list) or "type" in body:  # RFC 9457 (/v1/files)
        fields = {
            str(f.get("field")): str(f.get("message"))
            for f in body.get("invalid_fields") or []
            if isinstance(f, dict)
        }
        kind = str(body.get("type") or "").rstrip("/").rsplit("/", 1)[-1].replace("-", "_")
        return str(body.get("detail") or body.get("title") or ""), kind or None, fields
    return str(body.get("message") or body.get("detail") or ""), None, {}
