"""Reference pictures and packs in the SDK: ``image=`` and ``client.packs``.

``image`` (``generate``, ``submit``, ``packs.create``) may be a path, the file's bytes,
or a URL the service can read (``https://…``, an upload's ``/v1/files/{id}`` URL, a
``data:`` URL). Files and bytes are sent as a ``data:`` URL in the request.

``client.packs``: ``create`` (returns at once), ``make`` (create and wait), ``export``
(the whole pack as a WhatsApp or Telegram zip) and ``expressions`` (the built-in list).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from sticker_maker.sdk._client import AsyncClient, Client
    from sticker_maker.sdk._models import AsyncJob, Job, ProgressCallback

ImageInput = str | os.PathLike[str] | bytes
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"RIFF", "image/webp"),
)


def image_value(image: ImageInput) -> str:
    """What the API takes as ``image``: a URL as it is, a file or bytes as a data: URL."""
    if isinstance(image, bytes | bytearray):
        data = bytes(image)
    elif isinstance(image, str) and image.split(":", 1)[0].lower() in ("http", "https", "data"):
        return image
    else:
        data = Path(image).read_bytes()  # FileNotFoundError names the path
    kind = next((k for magic, k in _MAGIC if data.startswith(magic)), "image/png")
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def with_image(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``image`` made into what the API takes (None: left out)."""
    if params.get("image") is None:
        return params
    return {**params, "image": image_value(params["image"])}


def pack_body(
    character: str,
    expressions: list[str | dict[str, str]] | None,
    count: int | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    body = {"character": character, "expressions": expressions, "count": count, **params}
    return with_image({k: v for k, v in body.items() if v is not None})


def export_path(job_id: str, target: str, name: str | None, publisher: str | None) -> str:
    query = "&".join(
        f"{k}={quote(v, safe='')}" for k, v in (("name", name), ("publisher", publisher)) if v
    )
    path = f"/v1/packs/{quote(job_id, safe='')}/export/{quote(target, safe='')}"
    return f"{path}?{query}" if query else path


def _job_id(job: Any) -> str:
    return job if isinstance(job, str) else str(job.id)


class Packs:
    """``client.packs``: one character, one sticker per expression, in one job.

    >>> pack = client.packs.make("a corgi in a red scarf", count=8, image="me.jpg")
    >>> client.packs.export(pack, "whatsapp", "corgi.zip")
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        character: str,
        *,
        expressions: list[str | dict[str, str]] | None = None,
        count: int | None = None,
        **params: Any,
    ) -> Job:
        """Queue a pack and return its job at once (``job.wait()`` for the stickers).

        ``expressions``: text ("happy", "eating pizza") or ``{name, emoji, prompt}``;
        or ``count``: the first N built-in ones (default 8). ``params``: ``image``,
        ``ip_adapter_weight``, ``ip_adapter_noise``, ``strength``, ``preset``,
        ``width``, ``height``, ``steps``, ``seed``, ``negative_prompt``, …
        """
        from sticker_maker.sdk._models import Job

        body = pack_body(character, expressions, count, params)
        return Job._from_dict(
            self._client._request("POST", "/v1/packs", json=body).json(), self._client
        )

    def make(
        self,
        character: str,
        *,
        expressions: list[str | dict[str, str]] | None = None,
        count: int | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        **params: Any,
    ) -> Job:
        """:meth:`create`, then wait for the finished pack (raises as ``Job.wait`` does)."""
        job = self.create(character, expressions=expressions, count=count, **params)
        return job.wait(timeout, on_progress=on_progress)

    def export(
        self,
        job: Job | str,
        target: str = "whatsapp",
        path: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        publisher: str | None = None,
    ) -> bytes:
        """The pack as a zip: ``whatsapp`` (tray icon, emojis, 512 px WebP) or ``telegram``
        (512 px PNG/WebP, emojis listed). Written to ``path`` too when given."""
        url = export_path(_job_id(job), target, name, publisher)
        data = self._client._request("GET", url).content
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def expressions(self) -> list[dict[str, str]]:
        """The built-in expressions (``name``, ``emoji``, ``prompt``) that ``count`` takes."""
        return list(self._client._request("GET", "/v1/expressions").json()["expressions"])


class AsyncPacks:
    """``AsyncClient.packs``: the calls of :class:`Packs` with ``await``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        character: str,
        *,
        expressions: list[str | dict[str, str]] | None = None,
        count: int | None = None,
        **params: Any,
    ) -> AsyncJob:
        from sticker_maker.sdk._models import AsyncJob

        body = pack_body(character, expressions, count, params)
        response = await self._client._request("POST", "/v1/packs", json=body)
        return AsyncJob._from_dict(response.json(), self._client)

    async def make(
        self,
        character: str,
        *,
        expressions: list[str | dict[str, str]] | None = None,
        count: int | None = None,
        timeout: float | None = None,
        on_progress: Any = None,
        **params: Any,
    ) -> AsyncJob:
        job = await self.create(character, expressions=expressions, count=count, **params)
        return await job.wait(timeout, on_progress=on_progress)

    async def export(
        self,
        job: AsyncJob | str,
        target: str = "whatsapp",
        path: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        publisher: str | None = None,
    ) -> bytes:
        url = export_path(_job_id(job), target, name, publisher)
        data = (await self._client._request("GET", url)).content
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def expressions(self) -> list[dict[str, str]]:
        response = await self._client._request("GET", "/v1/expressions")
        return list(response.json()["expressions"])
