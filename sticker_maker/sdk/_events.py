"""Following a job's server-sent events (``GET /v1/jobs/{id}/events``) for ``wait()``.

A parser of the event-stream format (event/data lines, a blank line ends an event) is
twenty lines; ``httpx-sse`` would do the same for one more dependency of a light client.
Any failure to follow (an older server without the route, a proxy that buffers, a
dropped connection) makes ``wait()`` fall back to polling.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx

#: what makes wait() give up on the stream and poll instead
FALLBACK_ERRORS = (httpx.TransportError, httpx.StreamError, ValueError, KeyError)


def parse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """``(event, JSON data)`` for each complete event in ``lines``."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


async def aparse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    event, data = "message", []
    async for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def usable(response: httpx.Response) -> bool:
    """A 200 event stream (else: poll)."""
    kind = response.headers.get("content-type", "")
    return response.status_code == 200 and kind.startswith("text/event-stream")
