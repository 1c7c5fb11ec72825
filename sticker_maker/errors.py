"""Server-side exceptions, one hierarchy.

Every error a user can cause or act on is a :class:`StickerMakerError` with an
HTTP status and a message that says what to do. ``sticker_maker.api.errors``
maps these to responses in each API's envelope, in one place.

========================  ======  =====================================
exception                 status  when
========================  ======  =====================================
InvalidInput              400     a field is missing, malformed or out of range
AuthenticationError       401     no API key, a wrong one, or a revoked one
PermissionDenied          403     a user key calling an admin route
NotFound                  404     unknown (or not yours, or expired) job / file
Conflict                  409     the request clashes with current state
InsufficientCredits       406     balance below the job's reserved cost
RequestTimeout            408     a request body that did not arrive in time
PayloadTooLarge           413     request body over ``max_request_bytes``
IdempotencyMismatch       422     an Idempotency-Key reused with another body
ContentBlocked            422     the content policy refused the prompt (or, in a job, an image)
RateLimited               429     per-key limits; carries ``retry_after``
ServiceBusy               503     global queue full; carries ``retry_after``
Unavailable               503     disk full / database unreachable (``faults.py``)
SyncTimeout               504     a synchronous request's job did not finish in time
ModelUnavailable          (job)   weights cannot be loaded: fails the job
JobCanceled               (job)   raised inside the engine to stop a job
========================  ======  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass


class StickerMakerError(Exception):
    """Base class. ``status`` is the HTTP status, ``code`` a stable slug."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class FieldError:
    """One invalid field: a dotted path (``input.width``) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidInput(StickerMakerError):
    status = 400
    code = "invalid_input"

    def __init__(self, errors: list[FieldError] | str, field: str | None = None) -> None:
        if isinstance(errors, str):
            errors = [FieldError(field or "body", errors)]
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class AuthenticationError(StickerMakerError):
    status = 401
    code = "authentication_error"


class PermissionDenied(StickerMakerError):
    status = 403
    code = "permission_denied"


class NotFound(StickerMakerError):
    status = 404
    code = "not_found"


class InsufficientCredits(StickerMakerError):
    status = 406
    code = "insufficient_credits"


class Conflict(StickerMakerError):
    status = 409
    code = "conflict"


class RequestTimeout(StickerMakerError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(StickerMakerError):
    status = 413
    code = "payload_too_large"


class IdempotencyMismatch(StickerMakerError):
    status = 422
    code = "idempotency_key_reused"


class ContentBlocked(StickerMakerError):
    """The content policy refused the request: ``stage`` is ``prompt`` or ``image``.

    The message is the same whatever matched: it never repeats the words (or says what
    the image showed), so it cannot be used to probe the list.
    """

    status = 422
    code = "content_blocked"

    def __init__(self, stage: str, *, charged: bool = False) -> None:
        self.stage = stage
        self.charged = charged
        if stage == "prompt":
            message = (
                "This prompt was refused by the service's content policy (stage: prompt). "
                "Nothing was queued or charged; please change the prompt."
            )
        else:
            billed = (
                "Its GPU time was charged, as this service's policy says."
                if charged
                else "The credits it reserved were refunded."
            )
            message = (
                "The generated image was refused by the service's content policy "
                f"(stage: {stage}) and was not kept. {billed}"
            )
        super().__init__(message)


class RateLimited(StickerMakerError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceBusy(StickerMakerError):
    status = 503
    code = "service_busy"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServiceBusy):
    """A fault the service waits out (:mod:`sticker_maker.faults`): disk full, database away.

    ``reason`` (``disk_full``, ``database_unreachable``) is for logs and metrics.
    """

    code = "unavailable"

    def __init__(self, message: str, retry_after: float, reason: str = "") -> None:
        super().__init__(message, retry_after)
        self.reason = reason


class MethodNotAllowed(StickerMakerError):
    """A path asked with a method it does not take; ``allowed`` goes in ``Allow``."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed on {path}; allowed: {', '.join(allowed)}")
        self.allowed = allowed


class SyncTimeout(StickerMakerError):
    """A request that waits for its job (Segmind's sync route) ran out of time.

    The job keeps running; the message says where to fetch its result.
    """

    status = 504
    code = "timeout"


class ModelUnavailable(StickerMakerError):
    """Weights could not be found or loaded. The message names the model and the fix."""

    status = 422
    code = "model_unavailable"


class JobCanceled(StickerMakerError):
    """Raised from inside a running job when its cancel flag is set."""

    status = 409
    code = "canceled"
