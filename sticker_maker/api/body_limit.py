"""Request bodies larger than ``max_request_bytes`` get 413 before any route reads them.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused
at once; a body without one (chunked) is counted as it arrives and refused as
soon as it passes the limit. The answer uses the error envelope of the API the
path belongs to.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sticker_maker.api.errors import api_family, error_body
from sticker_maker.errors import InvalidInput, PayloadTooLarge, StickerMakerError


class _TooLarge(HTTPException):
    """Raised from ``receive``: routes' own error handling turns it into the 413 answer."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimit:
    """``skip``: paths whose routes bound their own body (the image upload routes)."""

    def __init__(self, app: ASGIApp, max_bytes: int, skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.skip = frozenset(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0 or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(scope, send, InvalidInput("is not a number", "Content-Length"))
                return
            if length > self.max_bytes:
                await self._refuse(scope, send, self._error())
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self._error().message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send, self._error())

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than {self.max_bytes} bytes "
            f"({self.max_bytes / 1024 / 1024:g} MiB), the limit of this service"
        )

    async def _refuse(self, scope: Scope, send: Send, exc: StickerMakerError) -> None:
        import json

        body = json.dumps(error_body(api_family(scope.get("path", "")), exc)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
