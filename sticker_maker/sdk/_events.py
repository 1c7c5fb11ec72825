"""Following a job's server-sent events (``GET /v1/jobs/{id}/events``) for ``wait()``.

A parser of the event-stream format (event/data lines, a blank line ends an event) is
twenty lines; ``httpx-sse`` would do the same for one more dependency of a light client.
Any failure to follow (an older server without the route, a proxy that buffers, a
dropped connection) makes ``wait()`` fall back to polling. :func:`follow` and
:func:`afollow` hand the events themselves to the caller (``client.jobs.events``), with
the SDK's typed errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from sticker_maker.sdk._errors import APIConnectionError
from sticker_maker.sdk._records import Event

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


def _stream_options(client: Any, job_id: str, timeout: float | None) -> tuple[str, dict[str, Any]]:
    url = client._url(f"/v1/jobs/{quote(job_id, safe='')}/events")
    headers = client._headers({"Accept": "text/event-stream"}, auth=True)
    return url, {"headers": headers, "timeout": httpx.Timeout(client.timeout, read=timeout)}


def _event(client: Any, event: str, data: Any) -> Event:
    job = client._job_class._from_dict(data, client) if event == "done" else None
    return Event(event, data, job)


def follow(client: Any, job_id: str, timeout: float | None) -> Iterator[Event]:
    """The events of ``job_id`` until it ends (``client.jobs.events``)."""
    url, options = _stream_options(client, job_id, timeout)
    try:
        with client._http.stream("GET", url, **options) as response:
            if response.is_error:
                response.read()
                raise client._error(response)
            for event, data in parse(response.iter_lines()):
                yield _event(client, event, data)
    except httpx.TimeoutException as exc:
        raise client._timed_out(exc, "GET", url) from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"GET {url} failed: {exc}") from exc


async def afollow(client: Any, job_id: str, timeout: float | None) -> AsyncIterator[Event]:
    """Like :func:`follow`, for an ``AsyncClient``."""
    url, options = _stream_options(client, job_id, timeout)
    try:
        async with client._http.stream("GET", url, **options) as response:
            if response.is_error:
                await response.aread()
                raise client._error(response)
            async for event, data in aparse(response.aiter_lines()):
                yield _event(client, event, data)
    except httpx.TimeoutException as exc:
        raise client._timed_out(exc, "GET", url) from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"GET {url} failed: {exc}") from exc
