"""The SDK's calls beyond generating: cut-outs, splits, exports, account, keys, presets, files.

Each resource is written once for both clients: a call builds its request and says how to
read the answer, and the client runs it (``Client`` returns the result, ``AsyncClient`` an
awaitable of it: ``await client.keys.list()``). Errors are the SDK's typed errors
(:mod:`sticker_maker.sdk._errors`), raised by the client's one request path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from sticker_maker.sdk._records import Account, Download, File, Key, NewKey, Preset

#: what an image input may be: bytes, a path, an open binary file, a URL (``http(s)://``,
#: ``data:``), an output of yours (:class:`OutputFile`) or a :class:`File` you uploaded
ImageInput = bytes | str | os.PathLike[str] | BinaryIO | Any
_URL_PREFIXES = ("http://", "https://", "data:")


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def image_part(image: ImageInput, field: str = "image") -> dict[str, Any]:
    """The request options that send ``image`` as the multipart field ``field``: the file
    itself, or, for a URL, an output or an uploaded :class:`File`, its address as text
    (the service fetches it)."""
    url = getattr(image, "url", None)
    if isinstance(url, str) and url:  # an OutputFile, a File
        image = url
    if isinstance(image, str) and image.startswith(_URL_PREFIXES):
        return {"files": {field: (None, image)}}  # a text part (still multipart)
    if isinstance(image, bytes | bytearray | memoryview):
        return {"files": {field: ("image", bytes(image))}}
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return {"files": {field: (path.name, path.read_bytes())}}
    if hasattr(image, "read"):
        name = Path(str(getattr(image, "name", "") or "image")).name
        return {"files": {field: (name, image.read())}}
    raise TypeError(
        f"{field}: expected bytes, a path, a binary file, a URL, an output or an uploaded "
        f"File, got {type(image).__name__}"
    )


def _form(**fields: Any) -> dict[str, str]:
    """Form fields as text, leaving out ``None`` (the service's default)."""
    form = {}
    for name, value in fields.items():
        if value is None:
            continue
        form[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return form


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class _Resource:
    """A group of calls on ``client`` (a :class:`Client` or an :class:`AsyncClient`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, method: str, path: str, parse: Any, **options: Any) -> Any:
        """Run one request; ``parse(response)`` is the result (awaitable on async clients)."""
        return self._client._call(method, path, parse, **options)

    def _job(self, response: Any) -> Any:
        return self._client._job_class._from_dict(response.json(), self._client)

    def _upload_job(self, path: str, image: ImageInput, options: dict[str, Any]) -> Any:
        """Queue an upload job: ``image`` and the ``options`` given as form fields."""
        part = image_part(image)
        part["data"] = {**part.get("data", {}), **_form(**options)}
        return self._call("POST", path, self._job, **part)


class Cutouts(_Resource):
    """``client.cutouts``: cut a picture out of its background (a ``cutout`` job)."""

    def create(
        self,
        image: ImageInput,
        *,
        remover: str | None = None,
        border: int | None = None,
        shadow: bool | None = None,
        trim: bool | None = None,
        holes: str | None = None,
        preset: str | None = None,
    ) -> Any:
        """Queue a cut-out of ``image``; the job (``job.wait()``, then ``job.stickers[0]``).

        ``remover``: ``auto``, ``model`` or ``none``; ``border``: white die-cut border in
        px (0: none); ``shadow``; ``trim`` (False keeps the canvas); ``holes``: ``auto``,
        ``keep`` or ``cut``; ``preset``: whose remover and price apply. ``None``: the
        service's default."""
        options = {"remover": remover, "border": border, "shadow": shadow, "trim": trim}
        options.update(holes=holes, preset=preset)
        return self._upload_job("/v1/cutouts", image, options)


class Splits(_Resource):
    """``client.splits``: split a sticker sheet into one sticker per piece (a ``split`` job)."""

    def create(
        self,
        image: ImageInput,
        *,
        remover: str | None = None,
        border: int | None = None,
        shadow: bool | None = None,
        preset: str | None = None,
    ) -> Any:
        """Queue a split of the sheet ``image``; the job, whose ``stickers`` are the pieces
        in reading order."""
        options = {"remover": remover, "border": border, "shadow": shadow, "preset": preset}
        return self._upload_job("/v1/splits", image, options)


#: the export targets of ``GET /v1/jobs/{id}/outputs/{n}/export/{target}``
EXPORT_TARGETS = (
    "png",
    "webp",
    "telegram",
    "whatsapp",
    "whatsapp_tray",
    "discord",
    "print_png",
    "print_svg",
)


def _output_ref(job: Any, output: Any) -> tuple[str, int]:
    """(job id, sticker index) from a job or its id and an :class:`OutputFile` or its
    ``index`` (the sample number; for a split, the piece number)."""
    job_id = job if isinstance(job, str) else getattr(job, "id", None)
    number = getattr(output, "index", output)
    if job_id is None:
        job_id = getattr(output, "job_id", None)
    if not isinstance(job_id, str) or not isinstance(number, int):
        raise TypeError("expected a job (or its id) and a sticker output (or its index)")
    return job_id, number


class Exports(_Resource):
    """``client.exports``: stickers encoded for an app or for print, and WhatsApp packs."""

    def sticker(self, output: Any, target: str, *, job: Any = None) -> Any:
        """A :class:`Download` of one sticker output encoded for ``target`` (see
        :data:`EXPORT_TARGETS`): ``client.exports.sticker(job.stickers[0], "telegram")``,
        or by number, ``client.exports.sticker(1, "whatsapp", job=job_id)``."""
        job_id, number = _output_ref(job, output)
        path = _path("v1", "jobs", job_id, "outputs", str(number), "export", target)
        fallback = f"sticker-{job_id[:8]}-{number}-{target}"
        return self._call("GET", path, lambda r: Download._parse(r, fallback))

    def whatsapp_pack(self, stickers: Iterable[Any], *, name: str, publisher: str) -> Any:
        """A :class:`Download` of a WhatsApp pack (zip) from 3 to 30 sticker outputs: each an
        :class:`OutputFile` or a ``(job id, sticker index)`` pair."""
        items = []
        for item in stickers:
            job_id, number = (
                _output_ref(*item) if isinstance(item, tuple) else _output_ref(None, item)
            )
            items.append({"job_id": job_id, "output": number})
        body = {"stickers": items, "name": name, "publisher": publisher}
        return self._call(
            "POST", "/v1/exports/whatsapp-pack", lambda r: Download._parse(r, "pack.zip"), json=body
        )


class AccountCalls(_Resource):
    """``client.account``: the calling key's balance, holds, limits and ledger."""

    def get(self, *, usage: int = 50) -> Any:
        """The :class:`Account`, with the ``usage`` most recent ledger rows (0-500)."""
        return self._call(
            "GET", "/v1/account", lambda r: Account._parse(r.json()), params={"usage": usage}
        )


class Keys(_Resource):
    """``client.keys``: API key management (admin keys only; others get
    :class:`PermissionDeniedError`)."""

    @staticmethod
    def _key(response: Any) -> Key:
        return Key._parse(response.json()["key"])

    def list(self, *, include_revoked: bool = False) -> Any:
        """Every key (:class:`Key`), with its balance and limits."""
        return self._call(
            "GET",
            "/v1/keys",
            lambda r: [Key._parse(k) for k in r.json()["keys"]],
            params={"include_revoked": "true" if include_revoked else "false"},
        )

    def create(
        self,
        *,
        label: str = "",
        scope: str = "user",
        credits: float = 0.0,
        requests_per_minute: int | None = None,
        submits_per_minute: int | None = None,
        max_active_jobs: int | None = None,
        safety: str | None = None,
    ) -> Any:
        """A new key: :class:`NewKey`, whose ``secret`` is shown this once. Limits left out
        (``None``) follow the service's defaults."""
        body = _body(
            label=label,
            scope=scope,
            credits=credits,
            requests_per_minute=requests_per_minute,
            submits_per_minute=submits_per_minute,
            max_active_jobs=max_active_jobs,
            safety=safety,
        )
        return self._call("POST", "/v1/keys", lambda r: NewKey._parse(r.json()), json=body)

    def get(self, key_id: str) -> Any:
        """One key by id or prefix."""
        return self._call("GET", _path("v1", "keys", key_id), self._key)

    def revoke(self, key_id: str) -> Any:
        """Revoke at once; the revoked :class:`Key`."""
        return self._call("POST", _path("v1", "keys", key_id, "revoke"), self._key)

    def rotate(self, key_id: str) -> Any:
        """A new secret for the same key and balance (:class:`NewKey`); the old one stops."""
        return self._call(
            "POST", _path("v1", "keys", key_id, "rotate"), lambda r: NewKey._parse(r.json())
        )

    def grant(self, key_id: str, credits: float, *, note: str = "") -> Any:
        """Add credits (negative: remove, never below 0); the :class:`Key` with its balance."""
        body = {"credits": credits, "note": note}
        return self._call("POST", _path("v1", "keys", key_id, "grant"), self._key, json=body)

    def set_limits(self, key_id: str, **limits: int | None) -> Any:
        """Set ``requests_per_minute``, ``submits_per_minute``, ``max_active_jobs``: those
        given change (``None``: back to the service default), the others stay."""
        path = _path("v1", "keys", key_id, "limits")
        return self._call("POST", path, self._key, json=limits)

    def set_safety(self, key_id: str, level: str | None) -> Any:
        """The key's content safety level (``off``, ``relaxed``, ``standard``, ``strict``;
        ``None``: the service default)."""
        path = _path("v1", "keys", key_id, "safety")
        return self._call("POST", path, self._key, json={"level": level})


class Presets(_Resource):
    """``client.presets``: what the service can make."""

    def list(self) -> Any:
        """Every :class:`Preset`."""
        return self._call(
            "GET", "/v1/presets", lambda r: [Preset._parse(p) for p in r.json()["presets"]]
        )


class Files(_Resource):
    """``client.files``: pictures uploaded once and used as image inputs by their URL."""

    def upload(self, file: ImageInput, *, metadata: dict[str, Any] | None = None) -> Any:
        """Upload a picture (bytes, a path or a binary file): its :class:`File`, whose
        ``url`` (or the File itself) is an image input for your jobs."""
        if isinstance(file, str) and file.startswith(_URL_PREFIXES):
            raise TypeError("file: upload the picture's bytes, a path or a file, not a URL")
        part = image_part(file, "content")
        if metadata is not None:
            part["data"] = {"metadata": json.dumps(metadata)}
        return self._call("POST", "/v1/files", lambda r: File._parse(r.json()), **part)

    def list(self) -> Any:
        """Your uploaded files, newest first."""
        return self._call(
            "GET", "/v1/files", lambda r: [File._parse(f) for f in r.json()["results"]]
        )

    def get(self, file_id: str) -> Any:
        return self._call("GET", _path("v1", "files", file_id), lambda r: File._parse(r.json()))

    def download(self, file_id: str) -> Any:
        """The file's bytes."""
        path = _path("v1", "files", file_id, "download")
        return self._call("GET", path, lambda r: r.content)

    def delete(self, file_id: str) -> Any:
        """Delete it now (retention would later)."""
        return self._call("DELETE", _path("v1", "files", file_id), lambda r: None)


def attach_resources(client: Any) -> None:
    """Give a ``Client`` or ``AsyncClient`` the calls of this module."""
    client.cutouts = Cutouts(client)
    client.splits = Splits(client)
    client.exports = Exports(client)
    client.account = AccountCalls(client)
    client.keys = Keys(client)
    client.presets = Presets(client)
    client.files = Files(client)
