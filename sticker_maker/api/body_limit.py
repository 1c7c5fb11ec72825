"""Request bodies: a size limit, a time limit, and a cap on all bodies in flight.

A pure ASGI middleware, in front of every route:

* **size**: a declared ``Content-Length`` over ``max_bytes`` is refused at once (413);
  a body without one (chunked) is counted as it arrives and refused as soon as it
  passes the limit. ``skip``: paths whose routes bound their own size (uploads); they
  still get the time limit and count in flight.
* **time**: a body that goes ``body_timeout`` seconds without a byte, or is not all
  there within ``BODY_DEADLINE_FACTOR`` times that, is cut off: 408 and the
  connection is closed. (A client that declares a body and never sends it used to
  hold a connection and a worker thread for as long as it liked.)
* **in flight**: the bytes of all request bodies being received or handled at once
  are capped at ``max_in_flight`` (a declared length is reserved before a byte is
  read; a chunked body reserves as it arrives). Beyond it a new body gets 503 with
  ``Retry-After: 1`` before it is read, so memory stays bounded however many large
  bodies arrive together. One body alone is always let in.

Answers use the error envelope of the API the path belongs to.
"""

from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sticker_maker.api.errors import api_family, error_body
from sticker_maker.errors import (
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    ServiceBusy,
    StickerMakerError,
)

#: the whole body must arrive within this many ``body_timeout`` periods
BODY_DEADLINE_FACTOR = 8
#: Retry-After (seconds) when too many bodies are in flight
IN_FLIGHT_RETRY_AFTER = 1.0


class _TooLarge(HTTPException):
    """Raised from ``receive``: routes' own error handling turns it into the 413 answer."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class _Cut(HTTPException):
    """Raised from ``receive`` when a body is too slow (408) or the cap is reached (503)."""


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        skip: tuple[str, ...] = (),
        body_timeout: float = 0.0,
        max_in_flight: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.skip = frozenset(skip)
        self.body_timeout = body_timeout
        self.max_in_flight = max_in_flight
        #: bytes reserved by the bodies in flight (changed on the event loop only)
        self.in_flight = 0
        #: the most ever reserved at once (for tests and benchmarks)
        self.peak_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is None and not chunked:  # no body
            await self.app(scope, receive, send)
            return
        limit = 0 if scope.get("path") in self.skip else self.max_bytes
        length = 0
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(scope, send, InvalidInput("is not a number", "Content-Length"))
                return
            if limit > 0 and length > limit:
                await self._refuse(scope, send, self._too_large())
                return
        if length and not self._reserve(length):
            await self._refuse(scope, send, self._busy())
            return
        reserved = length
        seen = 0
        complete = False
        started = False
        cut: StickerMakerError | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout * BODY_DEADLINE_FACTOR

        async def guarded_receive() -> Message:
            nonlocal seen, complete, reserved, cut
            if complete or self.body_timeout <= 0:
                message = await receive()
            else:
                wait = min(self.body_timeout, deadline - loop.time())
                try:
                    message = await asyncio.wait_for(receive(), max(wait, 0.0))
                except TimeoutError:
                    cut = RequestTimeout(self._slow_message(seen, length))
                    raise _Cut(408, cut.message) from None
            if message["type"] != "http.request":
                return message
            seen += len(message.get("body", b""))
            complete = not message.get("more_body", False)
            if limit > 0 and seen > limit:
                raise _TooLarge(self._too_large().message)
            if seen > reserved:  # a chunked body (or one longer than declared)
                if not self._reserve(seen - reserved):
                    cut = self._busy()
                    raise _Cut(503, cut.message)
                reserved = seen
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if cut is not None:  # the body was cut: close, and say when to retry
                    message = dict(message)
                    extra = [(b"connection", b"close")]
                    if isinstance(cut, ServiceBusy):
                        extra.append((b"retry-after", b"%d" % int(cut.retry_after)))
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send, self._too_large())
        except _Cut:
            if not started and cut is not None:
                await self._refuse(scope, send, cut)
        finally:
            self.in_flight -= reserved

    def _reserve(self, n: int) -> bool:
        """Count ``n`` more bytes in flight; False (nothing counted) past the cap."""
        cap = self.max_in_flight
        if cap > 0 and self.in_flight > 0 and self.in_flight + n > cap:
            return False
        self.in_flight += n
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return True

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than {self.max_bytes} bytes "
            f"({self.max_bytes / 1024 / 1024:g} MiB), the limit of this service"
        )

    def _busy(self) -> ServiceBusy:
        return ServiceBusy(
            "the service is receiving too many large requests at once; retry in a second",
            retry_after=IN_FLIGHT_RETRY_AFTER,
        )

    def _slow_message(self, seen: int, length: int) -> str:
        of = f" of {length}" if length else ""
        return (
            f"the request body did not arrive in time ({seen}{of} bytes received; at most "
            f"{self.body_timeout:g} s without data and "
            f"{self.body_timeout * BODY_DEADLINE_FACTOR:g} s in all); send it again"
        )

    async def _refuse(self, scope: Scope, send: Send, exc: StickerMakerError) -> None:
        family = api_family(scope.get("path", ""))
        body = json.dumps(error_body(family, exc)).encode()
        media_type = b"application/problem+json" if family == "replicate" else b"application/json"
        headers = [
            (b"content-type", media_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if isinstance(exc, ServiceBusy):
            headers.append((b"retry-after", b"%d" % max(1, int(exc.retry_after))))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
