"""``Client`` and ``AsyncClient``: the native job API over httpx.

Both read the service URL and API key from their arguments, else from
``STICKER_MAKER_URL`` / ``STICKER_MAKER_API_KEY``. 429 and 503 answers are
retried up to ``max_retries`` times after the server's ``Retry-After`` (at most
60 s; a longer one is raised at once), as are connections that could not be
opened. Requests that reached the service are never retried otherwise, so a
job is never submitted twice.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from sticker_maker import __version__
from sticker_maker.sdk import _events
from sticker_maker.sdk._errors import (
    APIConnectionError,
    APITimeoutError,
    error_for_status,
)
from sticker_maker.sdk._models import AsyncJob, Job, ProgressCallback
from sticker_maker.sdk._records import Event
from sticker_maker.sdk._resources import (
    AccountCalls,
    Cutouts,
    Exports,
    Files,
    Keys,
    Presets,
    Splits,
    attach_resources,
)

T = TypeVar("T")

ENV_URL = "STICKER_MAKER_URL"
ENV_API_KEY = "STICKER_MAKER_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
#: answers that mean "not now": retried after Retry-After
RETRY_STATUSES = frozenset({429, 503})
#: the longest Retry-After the client waits out by itself
MAX_RETRY_AFTER = 60.0
#: the longest ``Prefer: wait`` the service honours
MAX_PREFER_WAIT = 60

# indirections so tests can observe waiting without waiting
_sleep = time.sleep
_asleep = asyncio.sleep
_monotonic = time.monotonic


def _retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _job_body(prompt: str, preset: str | None, params: dict[str, Any]) -> dict[str, Any]:
    from sticker_maker.sdk._packs import with_image  # image=: a path, bytes or a URL

    body = {"prompt": prompt, **{k: v for k, v in with_image(params).items() if v is not None}}
    if preset is not None:
        body["preset"] = preset
    return body


def _prefer_wait(timeout: float | None) -> int:
    if timeout is None:
        return MAX_PREFER_WAIT
    return max(1, min(MAX_PREFER_WAIT, int(timeout)))


class _Base:
    """Configuration and the parts of a request that do no I/O."""

    #: cut-outs, splits, exports, the account, keys (admin), presets, uploaded files
    cutouts: Cutouts
    splits: Splits
    exports: Exports
    account: AccountCalls
    keys: Keys
    presets: Presets
    files: Files

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        headers: dict[str, str] | None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.api_key = api_key or os.environ.get(ENV_API_KEY) or None
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self._extra_headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _headers(self, extra: dict[str, str] | None, auth: bool) -> dict[str, str]:
        headers = {"User-Agent": f"sticker-maker-python/{__version__}", **self._extra_headers}
        if auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(extra or {})
        return headers

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying a 429/503, or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        delay = _retry_after(response.headers)
        if delay is None:
            delay = min(8.0, 0.5 * 2**attempt)
        return delay if delay <= MAX_RETRY_AFTER else None

    def _connect_delay(self, exc: Exception, attempt: int, method: str, url: str) -> float:
        """Back off before retrying a connection that could not be opened, or raise."""
        if attempt >= self.max_retries:
            raise APIConnectionError(f"could not reach {url} ({method}): {exc}") from exc
        return min(8.0, 0.5 * 2**attempt)

    def _error(self, response: httpx.Response) -> Exception:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        hint = ""
        if response.status_code == 401 and not self.api_key:
            hint = f"no API key was given: pass api_key=... or set {ENV_API_KEY}"
        return error_for_status(
            response.status_code, body, retry_after=_retry_after(response.headers), hint=hint
        )

    @staticmethod
    def _timed_out(exc: Exception, method: str, url: str) -> APITimeoutError:
        return APITimeoutError(f"{method} {url} timed out: {exc or type(exc).__name__}")


class Client(_Base):
    """The sticker-maker service, synchronously.

    >>> client = Client("http://127.0.0.1:8000", api_key="sm_...")
    >>> job = client.generate("cute cat", preset="sticker-maker", seed=42)
    >>> job.stickers[0].save("cat.png")

    ``transport`` (an ``httpx.BaseTransport``) or a whole ``http_client`` can be
    injected, e.g. to call an app in-process in tests. The client owns (and
    closes) only an HTTP client it made itself.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, max_retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        from sticker_maker.sdk._packs import Packs

        self.packs = Packs(self)  # create, make, export packs
        self.jobs = Jobs(self)
        attach_resources(self)

    # -- the public calls -------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        preset: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        **params: Any,
    ) -> Job:
        """Make stickers and wait for them: the finished :class:`Job`.

        ``params`` are the native API's fields: ``negative_prompt``, ``width``,
        ``height``, ``steps``, ``guidance_scale``, ``scheduler``, ``seed``,
        ``samples``, ``lora_scale``, ``upscale``, ``upscale_steps`` (``None``
        values are left out, i.e. the preset's default); ``image`` (a path, bytes
        or a URL: stickers of that picture's subject) with ``ip_adapter_weight``,
        ``ip_adapter_noise``, ``strength``, ``prompt_strength``. Without ``on_progress``
        the service is asked to answer when the job is done (``Prefer: wait``),
        so a quick job costs one request.

        Raises :class:`JobFailedError` if the job fails and
        :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        started = _monotonic()
        headers: dict[str, str] = {}
        request_timeout = None
        if on_progress is None:
            wait = _prefer_wait(timeout)
            headers["Prefer"] = f"wait={wait}"
            request_timeout = max(self.timeout, wait + 10.0)
        response = self._request(
            "POST",
            "/v1/jobs",
            json=_job_body(prompt, preset, params),
            headers=headers,
            timeout=request_timeout,
        )
        job = Job._from_dict(response.json(), self)
        remaining = None if timeout is None else max(0.0, timeout - (_monotonic() - started))
        return job.wait(remaining, on_progress=on_progress)

    def submit(self, prompt: str, *, preset: str | None = None, **params: Any) -> Job:
        """Queue a job and return at once; then ``job.wait()``, ``refresh()`` or ``cancel()``."""
        response = self._request("POST", "/v1/jobs", json=_job_body(prompt, preset, params))
        return Job._from_dict(response.json(), self)

    # -- plumbing ---------------------------------------------------------------

    _job_class = Job

    def _call(
        self, method: str, path: str, parse: Callable[[httpx.Response], T], **options: Any
    ) -> T:
        return parse(self._request(method, path, **options))

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
        **content: Any,
    ) -> httpx.Response:
        """One request, retried as the module says; ``content``: httpx's ``params``,
        ``data`` (form fields) and ``files`` (multipart)."""
        url = self._url(path)
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    url,
                    json=json,
                    headers=self._headers(headers, auth),
                    timeout=timeout or self.timeout,
                    **content,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                _sleep(self._connect_delay(exc, attempt, method, url))
                attempt += 1
                continue
            except httpx.TimeoutException as exc:
                raise self._timed_out(exc, method, url) from exc
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{method} {url} failed: {exc}") from exc
            delay = self._retry_delay(response, attempt)
            if delay is not None:
                _sleep(delay)
                attempt += 1
                continue
            if response.is_error:
                raise self._error(response)
            return response

    def _download(self, url: str) -> bytes:
        # Output URLs are capabilities: the API key is not sent along with them.
        return self._request("GET", url, auth=False).content

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Jobs:
    """``client.jobs``: your jobs on the service."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, limit: int = 50) -> list[Job]:
        """Your most recent jobs, newest first (``limit`` 1-200)."""
        data = self._client._request("GET", f"/v1/jobs?limit={int(limit)}").json()
        return [Job._from_dict(j, self._client) for j in data["jobs"]]

    def get(self, job_id: str) -> Job:
        return Job._from_dict(
            self._client._request("GET", f"/v1/jobs/{quote(job_id, safe='')}").json(), self._client
        )

    def cancel(self, job_id: str) -> Job:
        response = self._client._request("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")
        return Job._from_dict(response.json(), self._client)

    def events(self, job_id: str, *, timeout: float | None = None) -> Iterator[Event]:
        """The job's live events (:class:`Event`: ``queue``, ``progress``, ``logs``,
        ``preview``, then ``done`` with ``event.job``), as the service sends them; ends with
        the job. ``timeout``: the longest wait for the next event (None: no limit)."""
        return _events.follow(self._client, job_id, timeout)


class AsyncClient(_Base):
    """The sticker-maker service, with ``async``/``await``; the same calls as :class:`Client`.

    >>> async with AsyncClient() as client:
    ...     job = await client.generate("cute cat")
    ...     await job.stickers[0].save("cat.png")
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, max_retries, headers)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        from sticker_maker.sdk._packs import AsyncPacks

        self.packs = AsyncPacks(self)  # create, make, export packs
        self.jobs = AsyncJobs(self)
        attach_resources(self)

    async def generate(
        self,
        prompt: str,
        *,
        preset: str | None = None,
        timeout: float | None = None,
        on_progress: Any = None,
        **params: Any,
    ) -> AsyncJob:
        """See :meth:`Client.generate`."""
        started = _monotonic()
        headers: dict[str, str] = {}
        request_timeout = None
        if on_progress is None:
            wait = _prefer_wait(timeout)
            headers["Prefer"] = f"wait={wait}"
            request_timeout = max(self.timeout, wait + 10.0)
        response = await self._request(
            "POST",
            "/v1/jobs",
            json=_job_body(prompt, preset, params),
            headers=headers,
            timeout=request_timeout,
        )
        job = AsyncJob._from_dict(response.json(), self)
        remaining = None if timeout is None else max(0.0, timeout - (_monotonic() - started))
        return await job.wait(remaining, on_progress=on_progress)

    async def submit(self, prompt: str, *, preset: str | None = None, **params: Any) -> AsyncJob:
        """See :meth:`Client.submit`."""
        response = await self._request("POST", "/v1/jobs", json=_job_body(prompt, preset, params))
        return AsyncJob._from_dict(response.json(), self)

    _job_class = AsyncJob

    async def _call(
        self, method: str, path: str, parse: Callable[[httpx.Response], T], **options: Any
    ) -> T:
        return parse(await self._request(method, path, **options))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
        **content: Any,
    ) -> httpx.Response:
        """One request, retried as the module says; ``content``: httpx's ``params``,
        ``data`` (form fields) and ``files`` (multipart)."""
        url = self._url(path)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    headers=self._headers(headers, auth),
                    timeout=timeout or self.timeout,
                    **content,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                await _asleep(self._connect_delay(exc, attempt, method, url))
                attempt += 1
                continue
            except httpx.TimeoutException as exc:
                raise self._timed_out(exc, method, url) from exc
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{method} {url} failed: {exc}") from exc
            delay = self._retry_delay(response, attempt)
            if delay is not None:
                await _asleep(delay)
                attempt += 1
                continue
            if response.is_error:
                raise self._error(response)
            return response

    async def _download(self, url: str) -> bytes:
        return (await self._request("GET", url, auth=False)).content

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncJobs:
    """``client.jobs`` of an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self, limit: int = 50) -> list[AsyncJob]:
        data = (await self._client._request("GET", f"/v1/jobs?limit={int(limit)}")).json()
        return [AsyncJob._from_dict(j, self._client) for j in data["jobs"]]

    async def get(self, job_id: str) -> AsyncJob:
        response = await self._client._request("GET", f"/v1/jobs/{quote(job_id, safe='')}")
        return AsyncJob._from_dict(response.json(), self._client)

    async def cancel(self, job_id: str) -> AsyncJob:
        response = await self._client._request("POST", f"/v1/jobs/{quote(job_id, safe='')}/cancel")
        return AsyncJob._from_dict(response.json(), self._client)

    def events(self, job_id: str, *, timeout: float | None = None) -> AsyncIterator[Event]:
        """See :meth:`Jobs.events` (``async for event in client.jobs.events(id)``)."""
        return _events.afollow(self._client, job_id, timeout)
